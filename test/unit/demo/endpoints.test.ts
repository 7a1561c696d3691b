import t from "tap";
import { estimateTokens, replyText } from "../../../src/demo/determinism.js";
import {
  type Answer,
  type AnswerContext,
  answer,
  matchModelRoute,
  requestedTokens,
  tokenPieces,
} from "../../../src/demo/endpoints.js";
import { renderOutput } from "../../../src/demo/outputs.js";
import type { JsonValue } from "../../../src/pipeline/types.js";
import { seededRandom } from "../../../src/util/seeded-random.js";

const context: AnswerContext = {
  variant: "v1",
  version: "v1",
  task: undefined,
  fence: false,
  responseId: "demo-test",
  createdSeconds: 1_700_000_000,
};

function jsonBody(result: Answer, status = 200): Record<string, JsonValue> {
  if (result.kind !== "json") throw new Error("expected a JSON answer");
  if (result.status !== status)
    throw new Error(`expected ${status}, got ${result.status}: ${JSON.stringify(result.body)}`);
  return result.body as Record<string, JsonValue>;
}

t.test("routes: the model APIs match, names are decoded, everything else is unknown", async (t) => {
  t.same(matchModelRoute("/v1/chat/completions"), { kind: "chat" });
  t.same(matchModelRoute("/v1/completions"), { kind: "completions" });
  t.same(matchModelRoute("/v1/embeddings"), { kind: "embeddings" });
  t.same(matchModelRoute("/v1/responses"), { kind: "responses" });
  t.same(matchModelRoute("/v1/predict/eta%20v2"), { kind: "predict", task: "eta v2" });
  t.same(matchModelRoute("/v2/models/resnet/infer"), { kind: "infer", model: "resnet" });
  t.same(matchModelRoute("/v2/models/resnet/versions/3/infer"), { kind: "infer", model: "resnet" });
  t.equal(matchModelRoute("/v1/predict/%E0%A4%A"), undefined, "undecodable name");
  t.equal(matchModelRoute("/v1/predict/a/b"), undefined);
  t.equal(matchModelRoute("/v1/models"), undefined);
});

t.test("chat: n choices, token usage from all message contents, stable text per prompt", async (t) => {
  const messages = [
    { role: "system", content: "Be brief." },
    { role: "user", content: [{ type: "text", text: "What is the ETA?" }] },
  ];
  const body = jsonBody(answer({ kind: "chat" }, { messages, n: 3, max_tokens: 8 }, context));
  const choices = body.choices as { index: number; message: { content: string } }[];
  t.same(
    choices.map((choice) => choice.index),
    [0, 1, 2],
  );
  for (const choice of choices) t.ok(estimateTokens(choice.message.content) <= 8, "within max_tokens");
  t.same(body.usage, {
    prompt_tokens: estimateTokens("Be brief.\nWhat is the ETA?"),
    completion_tokens: choices.reduce((sum, choice) => sum + estimateTokens(choice.message.content), 0),
    total_tokens:
      estimateTokens("Be brief.\nWhat is the ETA?") +
      choices.reduce((sum, choice) => sum + estimateTokens(choice.message.content), 0),
  });
  const again = jsonBody(answer({ kind: "chat" }, { messages, n: 3, max_tokens: 8 }, context));
  t.same(again.choices, body.choices, "same prompt, same answer");
});

t.test("chat: invalid requests get a 400 naming the field", async (t) => {
  const cases: [JsonValue, RegExp][] = [
    [[], /JSON object/],
    [{ messages: [] }, /messages/],
    [{ messages: [{ content: "no role" }] }, /messages/],
    [{ messages: [{ role: "user", content: 3 }] }, /messages/],
    [{ messages: [{ role: "user", content: "x" }], n: 0 }, /^n must/],
    [{ messages: [{ role: "user", content: "x" }], max_tokens: -1 }, /max_tokens/],
    [{ messages: [{ role: "user", content: "x" }], stream: "yes" }, /stream/],
  ];
  for (const [request, message] of cases) {
    const body = jsonBody(answer({ kind: "chat" }, request, context), 400);
    t.match((body.error as { message: string }).message, message, JSON.stringify(request));
  }
});

t.test("chat: a json_schema response_format naming a catalogue task gets that task's output", async (t) => {
  const request = {
    messages: [{ role: "user", content: "great" }],
    response_format: { type: "json_schema", json_schema: { name: "sentiment", schema: {} } },
  };
  const body = jsonBody(answer({ kind: "chat" }, request, context));
  const content = (body.choices as { message: { content: string } }[])[0]?.message.content ?? "";
  t.same(JSON.parse(content), renderOutput("sentiment", "v1", request));

  const unknownName = { ...request, response_format: { type: "json_schema", json_schema: { name: "not-a-task" } } };
  const text = jsonBody(answer({ kind: "chat" }, unknownName, context));
  const plain = (text.choices as { message: { content: string } }[])[0]?.message.content ?? "";
  t.throws(() => JSON.parse(plain), "an unknown schema name gets plain text");

  const missing = jsonBody(answer({ kind: "chat" }, request, { ...context, variant: "no-such-break" }), 404);
  t.match(missing.error, { type: "not_found" });
});

t.test("completions: one choice per prompt and n, text_completion shape", async (t) => {
  const body = jsonBody(answer({ kind: "completions" }, { prompt: ["a", "b"], n: 2 }, context));
  t.equal(body.object, "text_completion");
  t.equal((body.choices as JsonValue[]).length, 4);
  t.match(body.choices, [{ index: 0, text: String, finish_reason: "stop" }]);
  jsonBody(answer({ kind: "completions" }, { prompt: [1, 2] }, context), 400);
});

t.test("embeddings: catalogue vectors, 8-dim and stable per text", async (t) => {
  const body = jsonBody(answer({ kind: "embeddings" }, { input: ["alpha", "beta"] }, context));
  const data = body.data as { index: number; embedding: number[] }[];
  t.same(
    data.map((item) => item.index),
    [0, 1],
  );
  for (const item of data) t.equal(item.embedding.length, 8);
  t.same(data[0]?.embedding, renderOutput("embedding", "v1", { input: "alpha" }), "the output catalogue's vector");
  t.notSame(data[0]?.embedding, data[1]?.embedding);
  jsonBody(answer({ kind: "embeddings" }, { input: [] }, context), 400);
});

t.test("predict: catalogue output for known task and variant, 404 otherwise", async (t) => {
  t.same(answer({ kind: "predict", task: "sentiment" }, { text: "x" }, context), {
    kind: "json",
    status: 200,
    body: renderOutput("sentiment", "v1", { text: "x" }),
  });
  const broken = answer({ kind: "predict", task: "sentiment" }, {}, { ...context, variant: "score_rescaled" });
  t.same(broken, { kind: "json", status: 200, body: renderOutput("sentiment", "score_rescaled", {}) });
  jsonBody(answer({ kind: "predict", task: "no-such-task" }, {}, context), 404);
});

t.test("infer: echoes the first tensor flattened, with its shape, as FP32", async (t) => {
  const request = {
    id: "r1",
    inputs: [
      {
        name: "x",
        datatype: "INT32",
        shape: [2, 2],
        data: [
          [1, 2],
          [3, "q"],
        ],
      },
    ],
  };
  t.same(jsonBody(answer({ kind: "infer", model: "m" }, request, { ...context, version: "v7" })), {
    model_name: "m",
    model_version: "v7",
    id: "r1",
    outputs: [{ name: "output0", datatype: "FP32", shape: [2, 2], data: [1, 2, 3, 0] }],
  });
  jsonBody(answer({ kind: "infer", model: "m" }, { inputs: [] }, context), 400);
  jsonBody(answer({ kind: "infer", model: "m" }, { inputs: [{ shape: [-1] }] }, context), 400);
});

t.test("requestedTokens reads max_tokens, max_completion_tokens or max_output_tokens, 0 when absent", async (t) => {
  t.equal(requestedTokens({ max_tokens: 64 }), 64);
  t.equal(requestedTokens({ max_completion_tokens: 32 }), 32);
  t.equal(requestedTokens({ max_output_tokens: 48 }), 48);
  t.equal(requestedTokens({ max_tokens: "many" }), 0);
  t.equal(requestedTokens([]), 0);
});

t.test("determinism helpers", async (t) => {
  const a = seededRandom(42);
  const b = seededRandom(42);
  const first = Array.from({ length: 5 }, () => a());
  t.same(
    first,
    Array.from({ length: 5 }, () => b()),
    "same seed, same sequence",
  );
  t.ok(first.every((value) => value >= 0 && value < 1));
  t.notSame(first, Array.from({ length: 5 }, seededRandom(43)), "another seed, another sequence");
  t.equal(replyText("p", 0, 1).length > 0, true, "at least one word even for a tiny budget");
  t.not(replyText("p", 0, 16), replyText("p", 1, 16), "choices differ");
});

function streamEvents(result: Answer): Record<string, JsonValue>[] {
  if (result.kind !== "stream") throw new Error("expected a stream");
  return result.events as Record<string, JsonValue>[];
}

type ChatChunk = { choices: { delta: { content?: string } }[] };

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

t.test(
  "tokenPieces: 3 to 8 code points each, cut inside JSON tokens, the same cuts for the same content",
  async (t) => {
    const samples = [
      JSON.stringify(renderOutput("chat_structured", "v1", { text: "invoice charged twice" })),
      JSON.stringify(renderOutput("chat_structured", "longest", {})),
      JSON.stringify({ priority: "URGENT" }),
    ];
    for (const content of samples) {
      const pieces = tokenPieces(content);
      t.equal(pieces.join(""), content, "the pieces add up to the content");
      t.ok(
        pieces.every((piece) => Array.from(piece).length >= 3 && Array.from(piece).length <= 8),
        `sizes ${pieces.map((piece) => Array.from(piece).length).join(",")}`,
      );
      t.notOk(
        pieces.some((piece) => LONE_SURROGATE.test(piece)),
        "no piece splits a character",
      );
      t.same(tokenPieces(content), pieces, "deterministic");
    }
    const urgent = tokenPieces(JSON.stringify({ priority: "URGENT" }));
    t.ok(urgent.length >= 3, `"priority": "URGENT" over ${urgent.length} events: ${JSON.stringify(urgent)}`);
    const triage = tokenPieces(samples[0] ?? "");
    t.ok(
      triage.slice(1).some((piece, i) => /[a-z]$/.test(triage[i] ?? "") && /^[a-z]/.test(piece)),
      "some cut falls inside a word",
    );
    t.notSame(tokenPieces(`${samples[0]} `).slice(0, 8), triage.slice(0, 8), "other content, other cuts");
    t.same(tokenPieces("{}"), ["{}"], "content under the minimum is one piece");
    t.same(tokenPieces(""), []);
  },
);

t.test("chat stream of structured output: token-sized pieces, the same events every time", async (t) => {
  const request = { messages: [{ role: "user", content: "My invoice is wrong" }], stream: true };
  const structured = { ...context, task: "chat_structured" };
  const events = streamEvents(answer({ kind: "chat" }, request, structured));
  t.same(streamEvents(answer({ kind: "chat" }, request, structured)), events, "same input, same events");
  const contents = (events as unknown as ChatChunk[]).map((event) => event.choices[0]?.delta.content ?? "");
  const whole = contents.join("");
  t.same(JSON.parse(whole), renderOutput("chat_structured", "v1", request));
  t.same(contents.slice(1, -1), tokenPieces(whole), "the content events are its token pieces");
  const prose = streamEvents(answer({ kind: "chat" }, { ...request, max_tokens: 24 }, context));
  const proseContents = (prose as unknown as ChatChunk[]).map((event) => event.choices[0]?.delta.content ?? "");
  t.ok(
    proseContents.slice(1, -2).every((piece) => piece.length === 12),
    "generated prose keeps its 12-character pieces",
  );
});

t.test(
  "stream usage as OpenAI sends it: a last chunk with empty choices, null usage before, none without",
  async (t) => {
    const chat = { messages: [{ role: "user", content: "How late is my order?" }], stream: true, n: 2 };
    const completions = { prompt: ["Once upon", "a time"], stream: true };
    for (const [route, request] of [
      [{ kind: "chat" }, chat],
      [{ kind: "completions" }, completions],
    ] as const) {
      const whole = jsonBody(answer(route, { ...request, stream: false }, context));
      const withUsage = streamEvents(answer(route, { ...request, stream_options: { include_usage: true } }, context));
      const last = withUsage.at(-1);
      t.same(last?.choices, [], `${route.kind}: the usage chunk has no choices`);
      t.same(last?.usage, whole.usage, `${route.kind}: prompt, completion and total tokens of the whole answer`);
      t.same(Object.keys((last?.usage ?? {}) as object).sort(), ["completion_tokens", "prompt_tokens", "total_tokens"]);
      t.ok(
        withUsage.slice(0, -1).every((event) => "usage" in event && event.usage === null),
        `${route.kind}: every other chunk carries a null usage`,
      );
      for (const options of [undefined, { include_usage: false }]) {
        const plain = streamEvents(
          answer(route, options === undefined ? request : { ...request, stream_options: options }, context),
        );
        t.notOk(
          plain.some((event) => "usage" in event),
          `${route.kind}: no usage field at all with stream_options ${JSON.stringify(options)}`,
        );
        t.equal(plain.length, withUsage.length - 1, "the same chunks, less the usage chunk");
      }
    }
  },
);

const responsesRoute = { kind: "responses" } as const;

type ResponseBody = {
  id: string;
  output: { id: string; content: { type: string; text: string }[] }[];
  usage: { input_tokens: number; output_tokens: number; total_tokens: number };
};

function outputText(body: Record<string, JsonValue>): string {
  return (body as unknown as ResponseBody).output[0]?.content[0]?.text ?? "";
}

t.test("responses: the Responses API shape, the prompt is the instructions then the input's text", async (t) => {
  const request = {
    model: "demo-llm",
    instructions: "Be brief.",
    input: [
      { role: "user", content: "What is the ETA?" },
      { type: "message", role: "user", content: [{ type: "input_text", text: "Order 42." }] },
    ],
    max_output_tokens: 12,
  };
  const body = jsonBody(answer(responsesRoute, request, context));
  const prompt = "Be brief.\nWhat is the ETA?\nOrder 42.";
  const text = replyText(prompt, 0, 12);
  const outputTokens = estimateTokens(text);
  t.same(body, {
    id: "resp_demotest",
    object: "response",
    created_at: context.createdSeconds,
    status: "completed",
    error: null,
    incomplete_details: null,
    instructions: "Be brief.",
    max_output_tokens: 12,
    model: "demo-llm",
    output: [
      {
        type: "message",
        id: "msg_demotest",
        status: "completed",
        role: "assistant",
        content: [{ type: "output_text", text, annotations: [] }],
      },
    ],
    usage: {
      input_tokens: estimateTokens(prompt),
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: outputTokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: estimateTokens(prompt) + outputTokens,
    },
  });
  t.same(jsonBody(answer(responsesRoute, request, context)), body, "same request, same answer");

  const plain = jsonBody(answer(responsesRoute, { input: "hello" }, context));
  t.match(plain, { model: "demo", instructions: null, max_output_tokens: null });
  t.equal(outputText(plain), replyText("hello", 0, 16), "a string input is the prompt; 16 tokens by default");
});

t.test("responses: invalid requests get a 400 naming the field", async (t) => {
  const cases: [JsonValue, RegExp][] = [
    [[], /JSON object/],
    [{}, /^input/],
    [{ input: [] }, /^input/],
    [{ input: [{ content: "no role" }] }, /^input/],
    [{ input: 3 }, /^input/],
    [{ input: "x", instructions: 3 }, /^instructions/],
    [{ input: "x", max_output_tokens: 0 }, /^max_output_tokens/],
    [{ input: "x", max_output_tokens: 1.5 }, /^max_output_tokens/],
    [{ input: "x", stream: "yes" }, /^stream/],
  ];
  for (const [request, message] of cases) {
    const body = jsonBody(answer(responsesRoute, request, context), 400);
    t.match(body.error, { message, type: "invalid_request_error" }, JSON.stringify(request));
  }
});

t.test("responses: structured output by text.format json_schema or x-demo-task, breaks like chat's", async (t) => {
  const request = {
    model: "triage-1",
    input: "my invoice is wrong",
    text: { format: { type: "json_schema", name: "chat_structured", schema: {}, strict: true } },
  };
  t.same(
    JSON.parse(outputText(jsonBody(answer(responsesRoute, request, context)))),
    renderOutput("chat_structured", "v1", request),
  );

  const byHeader = { model: "triage-1", input: "my invoice is wrong" };
  const structured = { ...context, task: "chat_structured" };
  t.same(
    JSON.parse(outputText(jsonBody(answer(responsesRoute, byHeader, structured)))),
    renderOutput("chat_structured", "v1", byHeader),
  );
  const broken = jsonBody(answer(responsesRoute, byHeader, { ...structured, variant: "empty_summary" }));
  t.same(JSON.parse(outputText(broken)), renderOutput("chat_structured", "empty_summary", byHeader));
  const fenced = outputText(jsonBody(answer(responsesRoute, byHeader, { ...structured, fence: true })));
  t.match(fenced, /^\n```json\n\{.*\}\n```\n$/s, "fenced like chat content");

  const chatFormat = {
    ...byHeader,
    response_format: { type: "json_schema", json_schema: { name: "chat_structured" } },
  };
  t.throws(
    () => JSON.parse(outputText(jsonBody(answer(responsesRoute, chatFormat, context)))),
    "chat's response_format is not the Responses API's",
  );
  const unknownName = { ...byHeader, text: { format: { type: "json_schema", name: "not-a-task", schema: {} } } };
  t.throws(
    () => JSON.parse(outputText(jsonBody(answer(responsesRoute, unknownName, context)))),
    "an unknown schema name gets plain text",
  );
  const missing = jsonBody(answer(responsesRoute, byHeader, { ...structured, variant: "no-such-break" }), 404);
  t.match(missing.error, { type: "not_found" });
});

type TypedEvent = Record<string, JsonValue> & { type: string; sequence_number: number };

function typedEvents(result: Answer): TypedEvent[] {
  if (result.kind !== "stream") throw new Error("expected a stream");
  if (result.framing !== "typed") throw new Error(`expected typed framing, got ${result.framing}`);
  return result.events as TypedEvent[];
}

t.test(
  "responses stream: typed events numbered from 0, the text in deltas, response.completed the whole response",
  async (t) => {
    const request = { model: "demo-llm", input: "tell me about tides", max_output_tokens: 40, stream: true };
    const events = typedEvents(answer(responsesRoute, request, context));
    t.same(
      events.map((event) => event.sequence_number),
      events.map((_, index) => index),
      "sequence_number counts every event from 0",
    );
    const types = events.map((event) => event.type);
    const deltas = events.filter((event) => event.type === "response.output_text.delta");
    t.same(types, [
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      ...deltas.map(() => "response.output_text.delta"),
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    const whole = jsonBody(answer(responsesRoute, { ...request, stream: false }, context));
    const text = outputText(whole);
    t.ok(deltas.length >= 5, `${deltas.length} deltas`);
    t.same(
      deltas.map((event) => event.delta),
      text.match(/.{1,12}/gs),
      "generated prose in chat's 12-character pieces",
    );
    for (const event of events.slice(3, -2)) {
      t.match(event, { item_id: "msg_demotest", output_index: 0, content_index: 0 }, event.type);
    }
    t.match(events[0], {
      response: { id: "resp_demotest", status: "in_progress", output: [], usage: null, model: "demo-llm" },
    });
    t.match(events[2], {
      item: { type: "message", id: "msg_demotest", status: "in_progress", role: "assistant", content: [] },
    });
    t.match(events[3], { part: { type: "output_text", text: "", annotations: [] } });
    t.match(events.at(-4), { text });
    t.match(events.at(-3), { part: { type: "output_text", text } });
    t.same(events.at(-2)?.item as JsonValue, (whole.output as JsonValue[])[0], "the item done is the output item");
    t.same(
      events.at(-1)?.response,
      { ...whole, max_output_tokens: 40 },
      "response.completed carries the unstreamed response",
    );
    t.same(typedEvents(answer(responsesRoute, request, context)), events, "same request, same events");
  },
);

t.test("responses stream of structured output: the same token pieces as chat's content events", async (t) => {
  const structured = { ...context, task: "chat_structured", variant: "empty_summary" };
  const request = { model: "triage-1", input: [{ role: "user", content: "My invoice is wrong" }], stream: true };
  const events = typedEvents(answer(responsesRoute, request, structured));
  const deltas = events.filter((event) => event.type === "response.output_text.delta").map((event) => event.delta);
  const text = deltas.join("");
  t.same(JSON.parse(text), renderOutput("chat_structured", "empty_summary", request));
  t.same(deltas, tokenPieces(text), "tokenizer-sized pieces");
  const chat = streamEvents(
    answer({ kind: "chat" }, { model: "triage-1", messages: request.input, stream: true }, structured),
  ) as unknown as ChatChunk[];
  const chatText = chat.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("");
  t.same(
    tokenPieces(chatText),
    chat.slice(1, -1).map((chunk) => chunk.choices[0]?.delta.content),
    "chat's pieces",
  );
  t.ok(text.indexOf('"summary":""') > text.indexOf('"tags":['), "the violating value after conforming fields");
});

t.test("stream framing: chat and completions close with [DONE], the Responses API names its events", async (t) => {
  const chat = answer({ kind: "chat" }, { messages: [{ role: "user", content: "x" }], stream: true }, context);
  const completions = answer({ kind: "completions" }, { prompt: "x", stream: true }, context);
  const responses = answer(responsesRoute, { input: "x", stream: true }, context);
  t.match([chat, completions, responses], [{ framing: "done" }, { framing: "done" }, { framing: "typed" }]);
});
