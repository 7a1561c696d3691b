import fc from "fast-check";
import t from "tap";
import { type FrameResult, frameMessage, MessageDeframer } from "../../../src/server/grpc-framing.js";

/** Appends a chunk and takes every result it makes available (stopping after a refusal, as a call does). */
function push(deframer: MessageDeframer, chunk: Buffer): FrameResult[] {
  deframer.append(chunk);
  const results: FrameResult[] = [];
  for (let result = deframer.next(); result !== undefined; result = deframer.next()) {
    results.push(result);
    if (result.type !== "message") break;
  }
  return results;
}

const payloads = (results: readonly FrameResult[]): string[] =>
  results.map((result) => (result.type === "message" ? result.bytes.toString("utf8") : `<${result.type}>`));

t.test("messages split and joined arbitrarily across chunks come out whole and in order", async (t) => {
  const stream = Buffer.concat(["first", "", "a longer third message"].map((text) => frameMessage(Buffer.from(text))));
  for (const chunkSize of [1, 2, 3, 5, 7, stream.length]) {
    const deframer = new MessageDeframer(1024);
    const out: FrameResult[] = [];
    for (let offset = 0; offset < stream.length; offset += chunkSize)
      out.push(...push(deframer, stream.subarray(offset, offset + chunkSize)));
    t.same(payloads(out), ["first", "", "a longer third message"], `chunks of ${chunkSize} bytes`);
    t.equal(deframer.buffered, 0, "nothing left over");
  }
});

t.test("a truncated message stays buffered", async (t) => {
  const deframer = new MessageDeframer(1024);
  const frame = frameMessage(Buffer.from("incomplete"));
  t.same(push(deframer, frame.subarray(0, 8)), []);
  t.equal(deframer.buffered, 8, "the partial frame is reported, so a stream ending here is an error");
});

t.test("an oversized message is refused at its prefix, before its bytes arrive", async (t) => {
  const deframer = new MessageDeframer(4);
  const prefix = Buffer.from([0, 0, 0, 1, 0]);
  t.same(push(deframer, prefix), [{ type: "too_large", length: 256 }]);
});

t.test("a compressed message is refused", async (t) => {
  const deframer = new MessageDeframer(1024);
  t.same(push(deframer, Buffer.from([1, 0, 0, 0, 1, 0x41])), [{ type: "compressed" }]);
});

t.test("a message after refusal is not returned", async (t) => {
  const deframer = new MessageDeframer(4);
  const results = push(
    deframer,
    Buffer.concat([
      frameMessage(Buffer.from("ok")),
      frameMessage(Buffer.from("too long")),
      frameMessage(Buffer.from("no")),
    ]),
  );
  t.same(payloads(results), ["ok", "<too_large>"]);
});

t.test("frameMessage writes an uncompressed prefix with the big-endian length", async (t) => {
  const frame = frameMessage(new Uint8Array(300));
  t.same([...frame.subarray(0, 5)], [0, 0, 0, 1, 44]);
  t.equal(frame.length, 305);
});

t.test("property: any messages under any chunking come out exactly as sent", async (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 12 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }),
      (messages, cuts) => {
        const stream = Buffer.concat(messages.map((message) => frameMessage(message)));
        const deframer = new MessageDeframer(300);
        const out: Buffer[] = [];
        let offset = 0;
        for (let index = 0; offset < stream.length; index++) {
          const size = cuts[index % cuts.length] ?? 1;
          for (const result of push(deframer, stream.subarray(offset, offset + size))) {
            if (result.type !== "message") return false;
            out.push(result.bytes);
          }
          offset += size;
        }
        return (
          deframer.buffered === 0 &&
          out.length === messages.length &&
          out.every((bytes, index) => Buffer.from(messages[index] ?? []).equals(bytes))
        );
      },
    ),
    { seed: 20261125, numRuns: 500 },
  );
  t.pass("500 random message sets and chunkings");
});

t.test("each message is admitted once, at its prefix, however its bytes are split", async (t) => {
  const asked: number[] = [];
  const deframer = new MessageDeframer(1024, (length) => {
    asked.push(length);
    return length < 10;
  });
  const stream = Buffer.concat(["four", "nine-byte"].map((text) => frameMessage(Buffer.from(text))));
  const out: FrameResult[] = [];
  for (let offset = 0; offset < stream.length; offset += 2)
    out.push(...push(deframer, stream.subarray(offset, offset + 2)));
  t.same(payloads(out), ["four", "nine-byte"]);
  t.same(asked, [4, 9], "asked once per message");
  t.same(push(deframer, frameMessage(Buffer.from("ten bytes!"))), [{ type: "not_admitted", length: 10 }]);
});

t.test("a message over many chunks: every byte received is handed out whole or reported as held", async (t) => {
  const deframer = new MessageDeframer(1 << 20);
  const payload = Buffer.alloc(100_000, 7);
  const frame = Buffer.concat([frameMessage(payload), frameMessage(Buffer.from("next"))]);
  const results: FrameResult[] = [];
  for (let offset = 0; offset < frame.length; offset += 1000) {
    results.push(...push(deframer, frame.subarray(offset, offset + 1000)));
    const handedOut = results.reduce(
      (sum, result) => sum + (result.type === "message" ? 5 + result.bytes.length : 0),
      0,
    );
    t.equal(deframer.buffered + handedOut, Math.min(offset + 1000, frame.length));
  }
  t.same(
    results.map((result) => (result.type === "message" ? result.bytes.toString("latin1") : result.type)),
    [payload.toString("latin1"), "next"],
  );
});
