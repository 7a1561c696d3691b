import t, { type Test } from "tap";
import { type SseEvent, SseFramer } from "../../../src/streams/sse.js";
import { assertEverySplit, frame, plain, text, utf8 } from "./fixtures.js";

/** Every two-chunk and the byte-at-a-time chunking of `bytes` give `expected` and lose no byte. */
const everySplit = (t: Test, bytes: Uint8Array, expected: object[], pending = ""): void =>
  assertEverySplit(t, () => new SseFramer(), bytes, expected, pending);

t.test("fields: data lines joined, event, id, retry; one space after the colon dropped", async (t) => {
  const stream = "event: delta\nid: 7\nretry: 1500\ndata: one\ndata:two\ndata:  three\ndata\nfoo: bar\n\n";
  const [event, ...rest] = new SseFramer().push(utf8(stream));
  t.same(rest, []);
  t.same(event, { raw: utf8(stream), event: "delta", data: "one\ntwo\n three\n", id: "7", retry: 1500 });
});

t.test("a block without data has no data; an id with U+0000 and a non-numeric retry are ignored", async (t) => {
  const events = new SseFramer().push(utf8(": ping\n\nid: a\0b\nretry: soon\n\nid\n\nevent:\ndata:\n\n"));
  t.same(plain(events), [
    { raw: ": ping\n\n" },
    { raw: "id: a\0b\nretry: soon\n\n" },
    { raw: "id\n\n", id: "" },
    { raw: "event:\ndata:\n\n", event: "", data: "" },
  ]);
});

t.test('events end at "\\n\\n", "\\r\\n\\r\\n", "\\r\\r" and any mix, under every split', async (t) => {
  const stream = "data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\r\n\ndata: e\n\r\n: x\r\n\r";
  everySplit(t, utf8(stream), [
    { raw: "data: a\n\n", data: "a" },
    { raw: "data: b\r\n\r\n", data: "b" },
    { raw: "data: c\r\r", data: "c" },
    { raw: "data: d\r\n\n", data: "d" },
    { raw: "data: e\n\r\n", data: "e" },
    { raw: ": x\r\n\r" },
  ]);
});

t.test('a "\\r" last in a chunk waits for the next byte', async (t) => {
  const framer = new SseFramer();
  t.same(framer.push(utf8("data: a\r")), []);
  t.same(framer.push(utf8("\r")), [], "the blank line's \\r may still be half of \\r\\n");
  t.same(plain(framer.push(utf8("\ndata: b"))), [{ raw: "data: a\r\r\n", data: "a" }]);
  t.equal(text(framer.pending()), "data: b");

  const split = new SseFramer();
  t.same(split.push(utf8("data: a\r")), []);
  t.same(plain(split.push(utf8("\n\r\n"))), [{ raw: "data: a\r\n\r\n", data: "a" }]);
  t.equal(split.pending().length, 0);
});

t.test("end(): a final \\r ends its line; what is left is an unfinished event", async (t) => {
  const framer = new SseFramer();
  t.same(framer.push(utf8("data: a\r\r")), []);
  t.equal(framer.midEvent, true);
  t.same(plain(framer.end()), [{ raw: "data: a\r\r", data: "a" }]);
  t.equal(framer.pending().length, 0);
  t.equal(framer.midEvent, false);

  // The bytes past the held ones are stale after a compaction (here a "\n"): not the \r's partner.
  const compacted = new SseFramer();
  t.equal(compacted.push(utf8("data: a\n\n:xxxx\n\r")).length, 1);
  t.same(plain(compacted.end()), [{ raw: ":xxxx\n\r" }]);
  t.equal(compacted.pending().length, 0);

  const unfinished = new SseFramer();
  t.same(unfinished.push(utf8("data: a\n\ndata: b")).length, 1);
  t.same(unfinished.end(), []);
  t.equal(text(unfinished.pending()), "data: b");
  t.equal(unfinished.midEvent, true);
});

t.test("separator blank lines are no event: their bytes lead the next event's raw", async (t) => {
  everySplit(t, utf8("\n\r\ndata: a\n\n\n"), [{ raw: "\n\r\ndata: a\n\n", data: "a" }], "\n");
  const framer = new SseFramer();
  framer.push(utf8("data: a\n\n\n\r"));
  t.equal(text(framer.pending()), "\n\r");
  t.equal(framer.midEvent, false, "only separators pending: the stream may end here");
  framer.push(utf8(":"));
  t.equal(framer.midEvent, true, "an unfinished comment line is part of an event");
});

t.test("midEvent is false when nothing is pending and true for an unfinished field line", async (t) => {
  const framer = new SseFramer();
  t.equal(framer.midEvent, false);
  framer.push(utf8("d"));
  t.equal(framer.midEvent, true);
  framer.push(utf8("ata: x\n"));
  t.equal(framer.midEvent, true, "a complete field line without its blank line");
  framer.push(utf8("\n"));
  t.equal(framer.midEvent, false);
});

t.test("UTF-8 characters split across chunks decode whole; invalid bytes are U+FFFD", async (t) => {
  const stream = utf8("data: é 日本 🙂\n\n");
  for (let cut = 1; cut < stream.length; cut++) {
    const { events } = frame(stream, [cut]);
    t.equal(events[0]?.data, "é 日本 🙂", `cut at ${cut}`);
  }
  const [bad] = new SseFramer().push(new Uint8Array([...utf8("data: a"), 0xff, 0x0a, 0x0a]));
  t.equal(bad?.data, "a\uFFFD");
});

t.test("a BOM at the stream's start is skipped in parsing and kept in raw, however split", async (t) => {
  const stream = utf8("\uFEFFdata: a\n\n\uFEFFdata: b\n\n");
  everySplit(t, stream, [
    { raw: "\xEF\xBB\xBFdata: a\n\n", data: "a" },
    // Later in the stream a U+FEFF is a character: "\uFEFFdata" is an unknown field name.
    { raw: "\xEF\xBB\xBFdata: b\n\n" },
  ]);
  const bomOnly = frame(utf8("\uFEFF\n"), []);
  t.same(bomOnly.events, []);
  t.equal(text(bomOnly.pending), "\xEF\xBB\xBF\n", "a BOM and a separator wait for the next event");
  t.equal(bomOnly.framer.midEvent, false);
});

t.test("the start of a BOM that is not one is data; a stream ending inside a BOM keeps it pending", async (t) => {
  const framer = new SseFramer();
  t.same(framer.push(new Uint8Array([0xef])), []);
  t.same(framer.push(new Uint8Array([0xbb])), []);
  t.same(plain(framer.push(utf8("x: 1\ndata: a\n\n"))), [{ raw: "\xEF\xBBx: 1\ndata: a\n\n", data: "a" }]);

  const cut = new SseFramer();
  t.same(cut.push(new Uint8Array([0xef, 0xbb])), []);
  t.equal(cut.midEvent, true);
  t.same(cut.end(), []);
  t.same([...cut.pending()], [0xef, 0xbb]);
});

t.test("an event beyond maxEventBytes overflows: the events before it are returned, then nothing", async (t) => {
  const framer = new SseFramer({ maxEventBytes: 12 });
  const first = "data: 1234\n\n"; // exactly 12 bytes: fits
  const events = framer.push(utf8(`${first}data: 12345\n\ndata: x\n\n`));
  t.same(plain(events), [{ raw: first, data: "1234" }]);
  t.equal(framer.overflowed, true);
  t.equal(text(framer.pending()), "data: 12345\n\ndata: x\n\n", "held from the overflowing event's start");
  t.same(framer.push(utf8("data: y\n\n")), [], "nothing more is read");
  t.same(framer.end(), []);
  t.equal(text(framer.pending()), "data: 12345\n\ndata: x\n\n", "nor kept");
  t.equal(framer.midEvent, true);
});

t.test("an unfinished event overflows as soon as it holds more than maxEventBytes", async (t) => {
  const framer = new SseFramer({ maxEventBytes: 10 });
  t.same(framer.push(utf8("data: 1234")), []);
  t.equal(framer.overflowed, false, "10 bytes held");
  t.same(framer.push(utf8("5")), []);
  t.equal(framer.overflowed, true);
  t.equal(text(framer.pending()), "data: 12345");
});

t.test("maxEventBytes below 1 is a caller bug", async (t) => {
  t.throws(() => new SseFramer({ maxEventBytes: 0 }), RangeError);
  t.throws(() => new SseFramer({ maxEventBytes: Number.NaN }), RangeError);
});

t.test("a large event in small chunks: linear work, and the buffer shrinks back afterwards", async (t) => {
  const framer = new SseFramer();
  const big = utf8(`data: ${"x".repeat(256 * 1024)}\n\n`);
  const started = performance.now();
  let events: SseEvent[] = [];
  for (let i = 0; i < big.length; i++) events = events.concat(framer.push(big.subarray(i, i + 1)));
  t.ok(performance.now() - started < 10_000, "256 KiB pushed a byte at a time in well under 10 s");
  t.equal(events.length, 1);
  t.equal(events[0]?.raw.length, big.length);
  t.same(plain(framer.push(utf8("data: a\n\ndata: b"))), [{ raw: "data: a\n\n", data: "a" }]);
  t.equal(text(framer.pending()), "data: b");
  t.same(plain(framer.push(utf8("\n\n"))), [{ raw: "data: b\n\n", data: "b" }]);
});

t.test("raw is a copy: reusing the pushed chunk changes nothing", async (t) => {
  const framer = new SseFramer();
  const chunk = utf8("data: a\n\ndata: b");
  const [event] = framer.push(chunk);
  chunk.fill(0x7a);
  t.equal(text(event!.raw), "data: a\n\n");
  t.equal(text(framer.pending()), "data: b");
});
