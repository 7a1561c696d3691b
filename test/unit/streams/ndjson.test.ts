import t, { type Test } from "tap";
import { errorRecord, framingOf, mediaTypeOf, newFramer } from "../../../src/streams/framing.js";
import { NdjsonFramer } from "../../../src/streams/ndjson.js";
import { SseFramer } from "../../../src/streams/sse.js";
import { assertEverySplit, everyChunking, frameWith, plain, text, utf8 } from "./fixtures.js";

/** Under every chunking, `bytes` frame to `expected`, leave `pending` and lose no byte. */
const everySplit = (t: Test, bytes: Uint8Array, expected: object[], pending = ""): void =>
  assertEverySplit(t, () => new NdjsonFramer(), bytes, expected, pending);

t.test('one event per line: "\\n" and "\\r\\n" end a line, blank lines lead the next, under every split', async (t) => {
  const stream = '{"a":1}\n{"b":2}\r\n\n \t\r\n{"c":"x\ry"}\n';
  everySplit(t, utf8(stream), [
    { raw: '{"a":1}\n', data: '{"a":1}' },
    { raw: '{"b":2}\r\n', data: '{"b":2}' },
    { raw: '\n \t\r\n{"c":"x\ry"}\n', data: '{"c":"x\ry"}' },
  ]);
});

t.test("a UTF-8 character split across chunks decodes whole, at every split", async (t) => {
  const stream = '{"t":"é€😀"}\n{"u":"ü"}';
  everySplit(
    t,
    utf8(stream),
    [
      { raw: text(utf8('{"t":"é€😀"}\n')), data: '{"t":"é€😀"}' },
      { raw: text(utf8('{"u":"ü"}')), data: '{"u":"ü"}' },
    ],
    "",
  );
});

t.test("the last line may go without its newline: end() completes it; blank tails stay pending", async (t) => {
  const framer = new NdjsonFramer();
  t.same(framer.push(utf8('{"a":1}')), []);
  t.equal(framer.midEvent, true, "a line is being read");
  t.same(plain(framer.end()), [{ raw: '{"a":1}', data: '{"a":1}' }]);
  t.equal(framer.midEvent, false);

  const blank = new NdjsonFramer();
  t.same(blank.push(utf8('{"a":1}\n\r\n  ')), [{ raw: utf8('{"a":1}\n'), data: '{"a":1}' }]);
  t.same(blank.end(), [], "whitespace is no line");
  t.equal(text(blank.pending()), "\r\n  ");
  t.equal(blank.midEvent, false, "a stream may end with blank lines");
});

t.test("an event beyond maxEventBytes overflows: the lines before it are returned, then nothing", async (t) => {
  const framer = new NdjsonFramer({ maxEventBytes: 8 });
  t.same(plain(framer.push(utf8('{"a":1}\n{"b":12345}\n{"c":3}\n'))), [{ raw: '{"a":1}\n', data: '{"a":1}' }]);
  t.equal(framer.overflowed, true);
  t.equal(framer.midEvent, true);
  t.equal(text(framer.pending()), '{"b":12345}\n{"c":3}\n', "held from the overflowing line's start");
  t.same(framer.push(utf8('{"d":4}\n')), []);
  t.same(framer.end(), []);

  const unfinished = new NdjsonFramer({ maxEventBytes: 8 });
  t.same(unfinished.push(utf8('{"a":12')), []);
  t.equal(unfinished.overflowed, false, "7 bytes held");
  t.same(unfinished.push(utf8("34")), []);
  t.equal(unfinished.overflowed, true, "as soon as it holds more than the cap");
  t.throws(() => new NdjsonFramer({ maxEventBytes: 0 }), RangeError);
});

t.test('overflow "skip" drops an oversized line as it passes and frames on, at every split', async (t) => {
  const bytes = utf8('{"a":1}\n{"big":"0123456789"}\r\n{"c":3}\n');
  for (const [label, cuts] of everyChunking(bytes)) {
    const { events, framer } = frameWith(new NdjsonFramer({ maxEventBytes: 10, overflow: "skip" }), bytes, cuts);
    t.same(
      plain(events),
      [
        { raw: '{"a":1}\n', data: '{"a":1}' },
        { raw: '{"c":3}\n', data: '{"c":3}' },
      ],
      `cut at ${label}`,
    );
    t.equal(framer.skipped, 1, `one skipped, cut at ${label}`);
    t.equal(framer.overflowed, false);
  }
  const framer = new NdjsonFramer({ maxEventBytes: 4, overflow: "skip" });
  t.same(framer.push(utf8('{"big":')), []);
  t.equal(framer.midEvent, true, "inside the skipped line");
  t.equal(framer.pending().byteLength, 0, "nothing of it is held");
  t.same(framer.push(utf8('"x"}\n{}\n')), [{ raw: utf8("{}\n"), data: "{}" }]);
  t.equal(framer.skipped, 1);
});

t.test('SSE overflow "skip" drops an oversized event up to its blank line and frames on, at every split', async (t) => {
  const bytes = utf8("data: a\n\ndata: 0123456789\r\ndata: more\r\n\r\n: x\n\ndata: b\n\n");
  for (const [label, cuts] of everyChunking(bytes)) {
    const { events, framer } = frameWith(new SseFramer({ maxEventBytes: 12, overflow: "skip" }), bytes, cuts);
    t.same(
      plain(events),
      [{ raw: "data: a\n\n", data: "a" }, { raw: ": x\n\n" }, { raw: "data: b\n\n", data: "b" }],
      `cut at ${label}`,
    );
    t.equal(framer.skipped, 1, `one skipped, cut at ${label}`);
  }
  const framer = new SseFramer({ maxEventBytes: 4, overflow: "skip" });
  t.same(framer.push(utf8("data: long")), []);
  t.equal(framer.midEvent, true, "inside the skipped event");
  t.same(framer.push(utf8(" and longer")), []);
  t.ok(framer.pending().byteLength <= 1, "nothing of it is held but the byte that tells its line is not blank");
});

t.test("the framing a content type announces: SSE always, NDJSON where its media type is listed", async (t) => {
  const ndjson = ["application/x-ndjson", "application/jsonl"];
  t.equal(framingOf("text/event-stream; charset=utf-8", []), "sse");
  t.equal(framingOf("Application/X-NDJSON; charset=utf-8", ndjson), "ndjson");
  t.equal(framingOf("application/jsonl", ndjson), "ndjson");
  t.equal(framingOf("application/x-ndjson", []), undefined, "undeclared: a plain body");
  t.equal(framingOf("application/json", ndjson), undefined);
  t.equal(framingOf(undefined, ndjson), undefined);
  t.equal(mediaTypeOf(" ;x"), undefined);
  t.ok(newFramer("sse") instanceof SseFramer);
  t.ok(newFramer("ndjson", { maxEventBytes: 3 }) instanceof NdjsonFramer);
});

t.test("an error record in each framing", async (t) => {
  t.equal(errorRecord("sse", '{"error":{}}'), 'event: error\ndata: {"error":{}}\n\n');
  t.equal(errorRecord("ndjson", '{"error":{}}'), '{"error":{}}\n');
  t.throws(() => errorRecord("ndjson", '{"a":\n1}'), RangeError);
});
