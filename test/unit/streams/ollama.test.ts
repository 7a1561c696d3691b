import t from "tap";
import { StreamAssembler } from "../../../src/streams/formats.js";
import { NdjsonFramer } from "../../../src/streams/ndjson.js";
import { deltaText, everyChunking, frameWith, pieces, utf8 } from "./fixtures.js";

const AT = "2026-12-07T10:00:00.000000Z";

/** An Ollama /api/chat stream of `content` in pieces, closed by its done line. */
function chatStream(content: string, size: number, extra: Record<string, unknown> = {}): string {
  const lines = pieces(content, size).map((piece) => ({
    model: "llama3.2",
    created_at: AT,
    message: { role: "assistant", content: piece },
    done: false,
  }));
  const done = {
    model: "llama3.2",
    created_at: AT,
    message: { role: "assistant", content: "" },
    done_reason: "stop",
    done: true,
    total_duration: 5_000_000,
    prompt_eval_count: 26,
    eval_count: 12,
    ...extra,
  };
  return [...lines, done].map((line) => `${JSON.stringify(line)}\n`).join("");
}

function read(stream: string, cuts: readonly number[] = []) {
  const assembler = new StreamAssembler("ollama");
  const readings = frameWith(new NdjsonFramer(), utf8(stream), cuts).events.map((event) => assembler.read(event));
  return { assembler, readings };
}

t.test("an /api/chat stream assembles into the stream: false answer, at every split", async (t) => {
  const content = '{"category":"shipping","priority":2} — ça va 😀';
  const stream = chatStream(content, 5);
  for (const [label, cuts] of everyChunking(utf8(stream)).filter((_, index) => index % 7 === 0)) {
    const { assembler, readings } = read(stream, cuts);
    t.same(deltaText(readings), { "message.content": content }, `deltas, cut at ${label}`);
    t.same(assembler.document(), {
      model: "llama3.2",
      created_at: AT,
      done_reason: "stop",
      done: true,
      total_duration: 5_000_000,
      prompt_eval_count: 26,
      eval_count: 12,
      message: { role: "assistant", content },
    });
    t.equal(assembler.done, true);
    t.same(assembler.usage, { promptTokens: 26, completionTokens: 12, totalTokens: 38 });
    t.equal(assembler.model, "llama3.2");
  }
  const { readings } = read(stream);
  t.same(readings.at(-1)?.completed, ["message.content"], "done completes the content");
  t.equal(readings[0]?.content, true, "the first delta is the first token");
  t.equal(readings.at(-1)?.content, false, "the done line carries no text");
});

t.test("an /api/generate stream: response deltas, thinking, context on the done line", async (t) => {
  const lines = [
    { model: "qwen3", created_at: AT, response: "", thinking: "hmm", done: false },
    { model: "qwen3", created_at: AT, response: "Hel", done: false },
    { model: "qwen3", created_at: AT, response: "lo", done: false },
    { model: "qwen3", created_at: AT, response: "", done: true, done_reason: "length", context: [1, 2], eval_count: 2 },
  ];
  const { assembler, readings } = read(lines.map((line) => `${JSON.stringify(line)}\n`).join(""));
  t.same(deltaText(readings), { thinking: "hmm", response: "Hello" });
  t.same(assembler.document(), {
    model: "qwen3",
    created_at: AT,
    done: true,
    done_reason: "length",
    context: [1, 2],
    eval_count: 2,
    response: "Hello",
    thinking: "hmm",
  });
  t.same(readings.at(-1)?.completed, ["response", "thinking"]);
  t.same(assembler.usage, { completionTokens: 2 });
});

t.test("chat tool calls come whole; before done the document says done: false", async (t) => {
  const call = { function: { name: "get_weather", arguments: { city: "Paris" } } };
  const { assembler } = read(
    `${JSON.stringify({ model: "m", created_at: AT, message: { role: "assistant", content: "", tool_calls: [call] }, done: false })}\n`,
  );
  t.same(assembler.document(), {
    model: "m",
    created_at: AT,
    done: false,
    message: { role: "assistant", content: "", tool_calls: [call] },
  });
  t.equal(assembler.done, false);
  t.equal(assembler.usage, undefined);
});

t.test("an error line is an upstream error; a line that is no object is malformed", async (t) => {
  const { readings } = read(
    '{"model":"m","created_at":"x","message":{"content":"a"},"done":false}\n{"error":"model runner crashed"}\n[1]\nnope\n',
  );
  t.same(readings[1]?.error, { message: "model runner crashed" });
  t.equal(readings[2]?.malformed, "expected an Ollama stream object");
  t.equal(readings[3]?.malformed, "data is not JSON");
});
