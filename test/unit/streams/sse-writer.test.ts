import t from "tap";
import { SseFramer } from "../../../src/streams/sse.js";
import { SSE_DONE, sseEvent } from "../../../src/streams/sse-writer.js";
import { text, utf8 } from "./fixtures.js";

t.test("sseEvent: the event name, one data line per line, the blank line", async (t) => {
  t.equal(text(sseEvent('{"a":1}')), 'data: {"a":1}\n\n');
  t.equal(
    Buffer.from(sseEvent("one\ntwo\r\nthree\rfour", "guard.error")).toString(),
    "event: guard.error\ndata: one\ndata: two\ndata: three\ndata: four\n\n",
  );
  t.equal(text(sseEvent("")), "data: \n\n");
});

t.test("sseEvent: what the framer reads back is what was written", async (t) => {
  for (const data of ["", " leading space", "a\n\nb", "日本 🙂", ": not a comment", "[DONE]"]) {
    const [event, ...rest] = new SseFramer().push(sseEvent(data, "x"));
    t.same(rest, []);
    t.equal(event?.data, data);
    t.equal(event?.event, "x");
  }
});

t.test("sseEvent: a line break in the event name is a caller bug", async (t) => {
  t.throws(() => sseEvent("x", "a\nb"), RangeError);
  t.throws(() => sseEvent("x", "a\r"), RangeError);
});

t.test("SSE_DONE is data: [DONE] and a blank line", async (t) => {
  t.same([...SSE_DONE], [...utf8("data: [DONE]\n\n")]);
});
