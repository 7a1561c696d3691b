import t from "tap";
import { detectFormat, StreamAssembler } from "../../../src/streams/formats.js";
import { SseFramer } from "../../../src/streams/sse.js";
import { assemble, chatStream, completionsStream, deltaText, responsesStream, sse, utf8 } from "./fixtures.js";

t.test("detectFormat: the request path's ending, query and trailing slash ignored", async (t) => {
  const cases: [string, string][] = [
    ["/v1/chat/completions", "openai.chat"],
    ["/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21", "openai.chat"],
    ["/V1/Chat/Completions/", "openai.chat"],
    ["/v1/completions", "openai.completions"],
    ["/v1/completions#x", "openai.completions"],
    ["/v1/responses", "openai.responses"],
    ["/v1/responses?stream=true", "openai.responses"],
    ["/v1/models/sentiment:predict", "generic"],
    ["/v1/embeddings", "generic"],
    ["/", "generic"],
    ["", "generic"],
  ];
  for (const [path, format] of cases) t.equal(detectFormat(path), format, path);
});

const CHAT = {
  id: "chatcmpl-g",
  object: "chat.completion",
  created: 1,
  model: "m",
  choices: [{ index: 0, message: { role: "assistant", content: "hi there" }, finish_reason: "stop" }],
};

t.test("a generic hint gives way to the first JSON event's obvious shape", async (t) => {
  const chat = assemble("generic", `: ping\n\n${chatStream(CHAT)}`);
  t.equal(chat.assembler.format, "openai.chat");
  t.same(chat.assembler.document(), CHAT);
  t.same(deltaText(chat.readings), { "choices[0].message.content": "hi there" });

  const completion = {
    id: "c",
    object: "text_completion",
    created: 1,
    model: "m",
    choices: [{ index: 0, text: "ok", finish_reason: "stop" }],
  };
  const legacy = assemble("generic", completionsStream(completion));
  t.equal(legacy.assembler.format, "openai.completions");
  t.same(legacy.assembler.document(), completion);

  const response = { id: "r", object: "response", model: "m", status: "completed", output: [] };
  const responses = assemble("generic", responsesStream(response));
  t.equal(responses.assembler.format, "openai.responses");
  t.same(responses.assembler.document(), response);

  const byName = assemble(
    "generic",
    sse({ output_index: 0, content_index: 0, delta: "x" }, "response.output_text.delta"),
  );
  t.equal(byName.assembler.format, "openai.responses", "the SSE event name says it");
  t.same(deltaText(byName.readings), { "output[0].content[0].text": "x" });
});

t.test("a generic hint stays when the first JSON event is none of them, and decides once", async (t) => {
  const chunk = { object: "chat.completion.chunk", choices: [] };
  const { assembler, readings } = assemble("generic", sse({ label: "spam" }) + sse(chunk));
  t.equal(assembler.format, "generic");
  t.same(
    readings.map((reading) => reading.documents),
    [[{ label: "spam" }], [chunk]],
  );
  const text = assemble("generic", sse({ object: "text_completion" }));
  t.equal(text.assembler.format, "generic", "text_completion without choices is not obviously one");
});

t.test("a hint other than generic is kept", async (t) => {
  const { assembler, readings } = assemble("openai.responses", chatStream(CHAT));
  t.equal(assembler.format, "openai.responses");
  t.equal(readings[0]?.malformed, "Responses API event without a type");
});

t.test("generic: each event's JSON value is one complete document; no assembled document", async (t) => {
  const stream = [
    sse({ model: "sentiment-v3", label: "positive", score: 0.91 }),
    sse({ label: "negative", score: 0.12, usage: { prompt_tokens: 4, completion_tokens: 1 } }),
    sse([1, 2, 3]),
    sse("null"),
    "data: not json\n\n",
    sse({ error: { message: "model crashed", type: "internal" } }),
    "data: [DONE]\n\n",
  ].join("");
  const { assembler, readings } = assemble("generic", stream);
  t.same(
    readings.map((reading) => reading.documents),
    [
      [{ model: "sentiment-v3", label: "positive", score: 0.91 }],
      [{ label: "negative", score: 0.12, usage: { prompt_tokens: 4, completion_tokens: 1 } }],
      [[1, 2, 3]],
      [null],
      [],
      [],
      [],
    ],
  );
  t.same(
    readings.map((reading) => reading.content),
    [true, true, true, true, false, false, false],
  );
  t.equal(readings[0]?.model, "sentiment-v3");
  t.same(readings[1]?.usage, { promptTokens: 4, completionTokens: 1 });
  t.equal(readings[4]?.malformed, "data is not JSON");
  t.same(readings[5]?.error, { message: "model crashed", type: "internal" });
  t.equal(readings[6]?.done, true);
  t.same(readings[6]?.completed, []);
  t.equal(assembler.document(), undefined);
  t.equal(assembler.contentEvents, 4);
  t.equal(assembler.model, "sentiment-v3");
  t.equal(assembler.format, "generic");
});

t.test("readings are of the event given, whatever came before; usage without counts is none", async (t) => {
  const assembler = new StreamAssembler("openai.chat");
  const [event] = new SseFramer().push(
    utf8(sse({ id: "x", choices: [], usage: { prompt_tokens: -1, completion_tokens: "2", total_tokens: null } })),
  );
  const reading = assembler.read(event!);
  t.equal(reading.usage, undefined);
  t.equal(assembler.usage, undefined);
  t.same(assembler.read({ raw: new Uint8Array() }), {
    deltas: [],
    completed: [],
    documents: [],
    done: false,
    content: false,
  });
});

t.test("a usage-only chunk without choices is read", async (t) => {
  const { assembler, readings } = assemble(
    "openai.chat",
    sse({ id: "x", usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }),
  );
  t.equal(readings[0]?.malformed, undefined);
  t.same(assembler.usage, { promptTokens: 3, completionTokens: 2, totalTokens: 5 });
  t.same(assembler.document(), {
    id: "x",
    object: "chat.completion",
    created: null,
    model: null,
    choices: [],
    usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
  });
});
