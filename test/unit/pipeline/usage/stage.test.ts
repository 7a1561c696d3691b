// The usage stage driven hook by hook, the way the pipeline calls it: streams cut at odd points with
// a clock that moves between chunks, non-streamed bodies, and the ways an exchange ends.
import pino from "pino";
import { Registry } from "prom-client";
import t, { type Test } from "tap";
import { configSchema } from "../../../../src/config/schema.js";
import { stageConfigs } from "../../../../src/pipeline/build.js";
import type { ChunkStep, Exchange, Outcome, ResponseInfo, Step } from "../../../../src/pipeline/types.js";
import { createUsageStage } from "../../../../src/pipeline/usage/stage.js";
import { registrySamples, registrySum } from "../../../helpers/registry-metrics.js";
import { chatStream, responsesStream, sse, utf8 } from "../../streams/fixtures.js";

const START = 1_000;
const COMPLETED: Outcome = { answeredBy: "upstream", status: 200, cancelled: false, streamed: true };
const SSE = { "content-type": "text/event-stream; charset=utf-8" };
const JSON_TYPE = { "content-type": "application/json" };

/** The stage's run: every hook of it is synchronous (nothing to await per chunk). */
interface Run {
  onRequestHeaders(): Step;
  onResponseHeaders(response: ResponseInfo): Step;
  onResponseChunk(chunk: Uint8Array, endOfStream: boolean): ChunkStep;
  onResponseBody(body: Uint8Array): Step;
  onEnd(outcome: Outcome): void;
}

function setup(usage: Record<string, unknown> = {}, section: Record<string, unknown> = {}) {
  const config = configSchema.parse({
    usage: section,
    routes: [
      { name: "chat", match: { pathPrefix: "/v1/" }, usage },
      { name: "off", match: { pathPrefix: "/off" }, usage: { enabled: false } },
      { name: "ollama", match: { pathPrefix: "/api/" }, streaming: { ndjson: { format: "ollama" } }, usage },
    ],
  });
  const registry = new Registry();
  let clock = START;
  const stage = createUsageStage(stageConfigs(config).usage, {
    registry,
    log: pino({ level: "silent" }),
    now: () => clock,
  });
  return {
    registry,
    stage,
    start: (exchange: Exchange): Run => stage.start(exchange) as Run,
    advance(ms: number): void {
      clock += ms;
    },
    exchange(options: { route?: string; path?: string; tier?: string } = {}): Exchange {
      const exchange: Exchange = {
        request: {
          method: "POST",
          path: options.path ?? "/v1/chat/completions",
          authority: "model",
          headers: new Map(),
          requestId: "r",
          endOfStream: false,
        },
        route: {
          name: options.route ?? "chat",
          streaming: config.routes.find((route) => route.name === (options.route ?? "chat"))?.streaming ?? {},
        },
        startedAt: clock,
        tenant: "anonymous",
        priority: "standard",
        extendDeadline: () => {},
      };
      if (options.tier !== undefined) exchange.tier = options.tier;
      return exchange;
    },
    /** Sum of a counter's (or a histogram series') samples matching `labels`. */
    sum: (name: string, labels: Record<string, string> = {}) => registrySum(registry, name, labels),
  };
}

function response(status: number, headers: Record<string, string>, endOfStream = false): ResponseInfo {
  return { status, headers: new Map(Object.entries(headers)), endOfStream };
}

/** `text` cut at every `every` bytes (odd sizes split lines, fields and multi-byte characters). */
function cut(text: string, every: number): Uint8Array[] {
  const bytes = utf8(text);
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += every) out.push(bytes.subarray(at, at + every));
  return out;
}

/** Feeds the chunks (the last with endOfStream), asserting each is forwarded unchanged. */
function feed(t: Test, run: Run, chunks: readonly Uint8Array[], between?: () => void): void {
  chunks.forEach((chunk, index) => {
    between?.();
    const step = run.onResponseChunk(chunk, index === chunks.length - 1);
    if (step.type !== "forward" || step.bytes !== chunk) t.fail(`chunk ${index} not forwarded as it came`);
  });
}

const CHAT = {
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 1_700_000_000,
  model: "gpt-4o-mini",
  choices: [
    { index: 0, message: { role: "assistant", content: "Bonjour, ça va ? 🙂 Très bien." }, finish_reason: "stop" },
  ],
  usage: { prompt_tokens: 12, completion_tokens: 9, total_tokens: 21 },
};

t.test("a stream with include_usage: its usage counted once, bytes forwarded unchanged", async (t) => {
  for (const every of [1, 7, 13, 150, 100_000]) {
    const s = setup();
    const exchange = s.exchange();
    const run = s.start(exchange);
    t.same(run.onRequestHeaders(), { type: "continue", needs: { responseHeaders: true } });
    t.same(run.onResponseHeaders(response(200, { ...SSE, "x-model-version": "v7" })), {
      type: "continue",
      responseBody: "stream",
    });
    feed(t, run, cut(chatStream(CHAT), every), () => s.advance(3));
    t.equal(exchange.completionTokens, 9, `cut every ${every}: completion tokens on the exchange`);
    t.equal(exchange.inputTokens, 12, "and the prompt tokens reported beside them");
    run.onEnd(COMPLETED);
    t.equal(await s.sum("guard_tokens_total", { route: "chat", model_version: "v7", kind: "prompt" }), 12);
    t.equal(await s.sum("guard_tokens_total", { route: "chat", model_version: "v7", kind: "completion" }), 9);
    t.equal(await s.sum("guard_stream_usage_missing_total"), 0);
    t.equal(await s.sum("guard_streams_total", { route: "chat", outcome: "completed" }), 1);
  }
});

t.test("usage on every event (vLLM continuous usage) is cumulative: the last one is counted", async (t) => {
  const s = setup();
  const exchange = s.exchange();
  const run = s.start(exchange);
  run.onResponseHeaders(response(200, SSE));
  const chunk = (content: string, completion: number) =>
    sse({
      object: "chat.completion.chunk",
      model: "m",
      choices: [{ index: 0, delta: { content } }],
      usage: { prompt_tokens: 5, completion_tokens: completion, total_tokens: 5 + completion },
    });
  feed(t, run, [utf8(chunk("a", 1)), utf8(chunk("b", 2) + chunk("c", 3)), utf8("data: [DONE]\n\n")]);
  t.equal(exchange.completionTokens, 3);
  run.onEnd(COMPLETED);
  t.equal(await s.sum("guard_tokens_total", { kind: "prompt" }), 5);
  t.equal(await s.sum("guard_tokens_total", { kind: "completion" }), 3);
});

t.test("a stream that completes without usage: tokens from its output events and the estimate, said so", async (t) => {
  const stream = chatStream(CHAT, { usage: false, piece: 4 });
  const outputEvents = stream.split("\n\n").filter((event) => /"content":"[^"]/.test(event)).length;
  for (const promptTokens of [undefined, 11]) {
    const s = setup();
    const exchange = s.exchange();
    if (promptTokens !== undefined) exchange.promptTokens = promptTokens;
    const run = s.start(exchange);
    run.onResponseHeaders(response(200, SSE));
    feed(t, run, cut(stream, 11), () => s.advance(2));
    run.onEnd(COMPLETED);
    t.same(
      (await registrySamples(s.registry, "guard_tokens_total")).map(({ labels, value }) => [
        labels.kind,
        labels.source,
        value,
      ]),
      [["completion", "deltas", outputEvents], ...(promptTokens === undefined ? [] : [["prompt", "estimate", 11]])],
      `prompt estimate ${promptTokens}: nothing labelled reported`,
    );
    t.equal(await s.sum("guard_stream_usage_missing_total", { route: "chat" }), 1);
    t.equal(exchange.completionTokens, undefined, "the exchange carries reported usage only");
    t.equal(exchange.inputTokens, undefined);
  }
  const cancelled = setup();
  const run = cancelled.start(cancelled.exchange());
  run.onResponseHeaders(response(200, SSE));
  feed(t, run, [utf8(stream.slice(0, 200))]);
  run.onEnd({ ...COMPLETED, cancelled: true });
  t.same(await registrySamples(cancelled.registry, "guard_tokens_total"), [], "a cancelled stream: nothing counted");
});

t.test("the Responses API stream: usage from response.completed, input/output tokens", async (t) => {
  const s = setup();
  const run = s.start(s.exchange({ path: "/v1/responses" }));
  run.onResponseHeaders(response(200, SSE));
  const completed = {
    id: "resp_1",
    object: "response",
    created_at: 1,
    status: "completed",
    model: "gpt-4.1",
    output: [
      {
        id: "msg_1",
        type: "message",
        role: "assistant",
        status: "completed",
        content: [{ type: "output_text", text: "Hello there", annotations: [] }],
      },
    ],
    usage: { input_tokens: 30, output_tokens: 4, total_tokens: 34 },
  };
  feed(t, run, cut(responsesStream(completed), 97), () => s.advance(1));
  run.onEnd(COMPLETED);
  t.equal(await s.sum("guard_tokens_total", { kind: "prompt" }), 30);
  t.equal(await s.sum("guard_tokens_total", { kind: "completion" }), 4);
});

t.test("time to first token: measured to the first chunk with model output, not the role-only chunk", async (t) => {
  const s = setup();
  const run = s.start(s.exchange({ tier: "heavy" }));
  s.advance(40); // upstream latency to the response headers
  run.onResponseHeaders(response(200, SSE));
  const events = chatStream(CHAT, { piece: 100 }).split(/(?<=\n\n)/);
  t.match(events[0], /"role":"assistant","content":""/, "the first event carries the role only");
  s.advance(60);
  run.onResponseChunk(utf8(events[0] as string), false);
  // The content event arrives in two pieces: it is output once complete.
  const [head, tail] = [(events[1] as string).slice(0, 30), (events[1] as string).slice(30)];
  s.advance(150);
  run.onResponseChunk(utf8(head), false);
  s.advance(50);
  run.onResponseChunk(utf8(tail), false);
  run.onResponseChunk(utf8(events.slice(2).join("")), true);
  run.onEnd(COMPLETED);
  const labels = { route: "chat", tier: "heavy" };
  t.equal(await s.sum("guard_stream_time_to_first_token_seconds_count", labels), 1);
  t.equal(await s.sum("guard_stream_time_to_first_token_seconds_sum", labels), 0.3, "40 + 60 + 150 + 50 ms");
  t.equal(await s.sum("guard_stream_time_to_first_token_seconds_bucket", { ...labels, le: "0.25" }), 0);
  t.equal(await s.sum("guard_stream_time_to_first_token_seconds_bucket", { ...labels, le: "0.5" }), 1);
});

t.test("time per output token: output time span over completion tokens - 1", async (t) => {
  const s = setup();
  const run = s.start(s.exchange());
  run.onResponseHeaders(response(200, SSE));
  const chunk = (content: string) =>
    utf8(sse({ object: "chat.completion.chunk", model: "m", choices: [{ index: 0, delta: { content } }] }));
  run.onResponseChunk(chunk("one two"), false); // first output at 0 ms
  s.advance(120);
  run.onResponseChunk(chunk(" three"), false);
  s.advance(280);
  run.onResponseChunk(chunk(" four five"), false); // last output at 400 ms
  s.advance(30);
  const usage = {
    object: "chat.completion.chunk",
    model: "m",
    choices: [],
    usage: { prompt_tokens: 3, completion_tokens: 5 },
  };
  run.onResponseChunk(utf8(`${sse(usage)}data: [DONE]\n\n`), true);
  run.onEnd(COMPLETED);
  const labels = { route: "chat", tier: "none" };
  t.equal(await s.sum("guard_stream_time_per_output_token_seconds_count", labels), 1);
  t.equal(await s.sum("guard_stream_time_per_output_token_seconds_sum", labels), 0.1, "400 ms / (5 - 1)");
});

t.test("time per output token without usage: the output events are the divisor", async (t) => {
  const s = setup();
  const run = s.start(s.exchange());
  run.onResponseHeaders(response(200, SSE));
  const events = chatStream(CHAT, { usage: false, piece: 10 }).split(/(?<=\n\n)/); // role, 3 pieces, finish, DONE
  run.onResponseChunk(utf8(events.slice(0, 2).join("")), false);
  s.advance(100);
  run.onResponseChunk(utf8(events[2] as string), false);
  s.advance(100);
  run.onResponseChunk(utf8(events.slice(3).join("")), true);
  run.onEnd(COMPLETED);
  t.equal(await s.sum("guard_stream_time_per_output_token_seconds_sum"), 0.1, "200 ms / (3 output events - 1)");
});

t.test("output that all came in one chunk has no time per token", async (t) => {
  const s = setup();
  const run = s.start(s.exchange());
  run.onResponseHeaders(response(200, SSE));
  s.advance(80);
  run.onResponseChunk(utf8(chatStream(CHAT)), true);
  run.onEnd(COMPLETED);
  t.equal(await s.sum("guard_stream_time_per_output_token_seconds_count"), 0);
  t.equal(await s.sum("guard_stream_time_to_first_token_seconds_sum"), 0.08);
  t.equal(await s.sum("guard_tokens_total", { kind: "completion" }), 9);
});

t.test("usage saying fewer than two tokens gives no time per token", async (t) => {
  const s = setup();
  const run = s.start(s.exchange());
  run.onResponseHeaders(response(200, SSE));
  const chunk = (content: string) =>
    utf8(sse({ object: "chat.completion.chunk", model: "m", choices: [{ index: 0, delta: { content } }] }));
  run.onResponseChunk(chunk("a"), false);
  s.advance(10);
  run.onResponseChunk(chunk("b"), false);
  const usage = { object: "chat.completion.chunk", choices: [], usage: { prompt_tokens: 1, completion_tokens: 1 } };
  run.onResponseChunk(utf8(sse(usage)), true);
  run.onEnd(COMPLETED);
  t.equal(await s.sum("guard_stream_time_per_output_token_seconds_count"), 0);
});

t.test("a cancelled stream and a cut one: counted by outcome, never as missing usage", async (t) => {
  for (const [outcome, label] of [
    [{ answeredBy: "unknown", status: 200, cancelled: true, streamed: true }, "cancelled"],
    [{ answeredBy: "guard", status: 200, reason: "contract.violated", cancelled: false, streamed: true }, "cut"],
  ] as const) {
    const s = setup();
    const run = s.start(s.exchange());
    run.onResponseHeaders(response(200, SSE));
    const stream = chatStream(CHAT);
    feed(t, run, cut(stream.slice(0, stream.length / 2), 9), () => s.advance(5));
    run.onEnd(outcome);
    t.equal(await s.sum("guard_streams_total", { route: "chat", outcome: label }), 1, label);
    t.equal(await s.sum("guard_streams_total"), 1);
    t.equal(await s.sum("guard_stream_usage_missing_total"), 0, `${label}: its usage was never due`);
    t.equal(await s.sum("guard_stream_time_to_first_token_seconds_count"), 1, `${label}: the first token did pass`);
  }
});

t.test("a cancelled stream that did report usage (continuous usage) has it counted", async (t) => {
  const s = setup();
  const run = s.start(s.exchange());
  run.onResponseHeaders(response(200, SSE));
  const event = sse({
    object: "chat.completion.chunk",
    choices: [{ index: 0, delta: { content: "x" } }],
    usage: { prompt_tokens: 4, completion_tokens: 1 },
  });
  run.onResponseChunk(utf8(event), false);
  run.onEnd({ answeredBy: "unknown", status: 200, cancelled: true, streamed: true });
  t.equal(await s.sum("guard_tokens_total", { kind: "completion" }), 1);
  t.equal(await s.sum("guard_streams_total", { outcome: "cancelled" }), 1);
});

t.test("a stream another stage had buffered whole is read at once, as it passes", async (t) => {
  const s = setup();
  const exchange = s.exchange();
  const run = s.start(exchange);
  run.onResponseHeaders(response(200, SSE));
  s.advance(500);
  t.same(run.onResponseBody(utf8(chatStream(CHAT))), { type: "continue" });
  run.onEnd({ answeredBy: "upstream", status: 200, cancelled: false });
  t.equal(await s.sum("guard_tokens_total", { kind: "completion" }), 9);
  t.equal(await s.sum("guard_streams_total", { outcome: "completed" }), 1);
  t.equal(
    await s.sum("guard_stream_time_to_first_token_seconds_sum"),
    0.5,
    "the client's first token came with the body",
  );
  t.equal(await s.sum("guard_stream_time_per_output_token_seconds_count"), 0, "all at once: no time per token");
});

t.test("a stream whose last blank line is a lone \\r at its end, and chunks after the end", async (t) => {
  const s = setup();
  const run = s.start(s.exchange());
  run.onResponseHeaders(response(200, SSE));
  const usage = { object: "chat.completion.chunk", choices: [], usage: { prompt_tokens: 2, completion_tokens: 6 } };
  // The final "\r" is a blank line only once the stream ends: end() completes the event.
  run.onResponseChunk(utf8(`data: ${JSON.stringify(usage)}\n\r`), true);
  const late = { ...usage, usage: { prompt_tokens: 2, completion_tokens: 99 } };
  const after = run.onResponseChunk(utf8(sse(late)), true);
  t.equal(after.type, "forward", "a chunk after the end passes, unread");
  run.onEnd(COMPLETED);
  t.equal(await s.sum("guard_tokens_total", { kind: "completion" }), 6, "the final \\r ended the event; counted once");
});

t.test("non-streamed bodies: counted when the body passes; Envoy is not asked to buffer it", async (t) => {
  const s = setup();
  const exchange = s.exchange();
  const run = s.start(exchange);
  t.same(run.onResponseHeaders(response(200, { ...JSON_TYPE, "x-model-version": "2024-08" })), {
    type: "continue",
    responseBody: "none",
  });
  // Another stage (the cache, a contract) needed it whole: the body comes by anyway.
  run.onResponseBody(utf8(JSON.stringify(CHAT)));
  t.equal(exchange.completionTokens, 9);
  run.onEnd({ answeredBy: "upstream", status: 200, cancelled: false });
  t.equal(await s.sum("guard_tokens_total", { model_version: "2024-08", kind: "prompt" }), 12);
  t.equal(await s.sum("guard_tokens_total", { model_version: "2024-08", kind: "completion" }), 9);
  t.same(await registrySamples(s.registry, "guard_streams_total"), [], "not a stream");

  const responses = s.start(s.exchange({ path: "/v1/responses" }));
  responses.onResponseHeaders(response(200, {}));
  responses.onResponseBody(utf8(JSON.stringify({ object: "response", usage: { input_tokens: 7, output_tokens: 0 } })));
  responses.onEnd({ answeredBy: "upstream", status: 200, cancelled: false });
  t.equal(await s.sum("guard_tokens_total", { model_version: "none", kind: "prompt" }), 7, "Responses names");
  t.same(
    (await registrySamples(s.registry, "guard_tokens_total", { model_version: "none", kind: "completion" })).map(
      (sample) => sample.value,
    ),
    [0],
    "a zero creates the series",
  );
});

t.test("countBodies: every non-streamed JSON 2xx body is asked for whole", async (t) => {
  const s = setup({ countBodies: true, maxBodyBytes: 200 });
  const run = s.start(s.exchange());
  t.same(run.onResponseHeaders(response(200, JSON_TYPE)), { type: "continue", responseBody: "whole" });
  t.same(run.onResponseHeaders(response(200, { "content-type": "image/png" })), {
    type: "continue",
    responseBody: "none",
  });
  t.same(run.onResponseHeaders(response(200, { ...JSON_TYPE, "content-encoding": "gzip" })), {
    type: "continue",
    responseBody: "none",
  });
  t.same(run.onResponseHeaders(response(200, { ...JSON_TYPE, "content-encoding": " Identity" })), {
    type: "continue",
    responseBody: "whole",
  });
  t.same(run.onResponseHeaders(response(503, JSON_TYPE)), { type: "continue", responseBody: "none" });
  t.same(run.onResponseHeaders(response(200, JSON_TYPE, true)), { type: "continue", responseBody: "none" });
});

t.test("bodies not counted: too large, not JSON, no usage, an error status, replaced by the guard", async (t) => {
  const s = setup({ maxBodyBytes: 100 });
  const body = (run: Run, status: number, text: string, outcome: Partial<Outcome> = {}) => {
    run.onResponseHeaders(response(status, JSON_TYPE));
    run.onResponseBody(utf8(text));
    run.onEnd({ answeredBy: "upstream", status, cancelled: false, ...outcome });
  };
  const usage = JSON.stringify({ usage: { prompt_tokens: 1, completion_tokens: 1 } });
  body(s.start(s.exchange()), 200, JSON.stringify({ pad: "x".repeat(100), usage: { prompt_tokens: 1 } }));
  body(s.start(s.exchange()), 200, "{not json");
  body(s.start(s.exchange()), 200, "[1,2]");
  body(s.start(s.exchange()), 200, JSON.stringify({ usage: null }));
  body(s.start(s.exchange()), 500, usage);
  body(s.start(s.exchange()), 200, usage, {
    answeredBy: "guard",
    reason: "contract.violated",
    status: 502,
  });
  const ended = s.start(s.exchange());
  ended.onEnd({ answeredBy: "unknown", cancelled: true });
  t.same(await registrySamples(s.registry, "guard_tokens_total"), []);
  t.same(await registrySamples(s.registry, "guard_streams_total"), []);
});

t.test("an error-status event stream is not read, and a chunk for a run that is not streaming passes", async (t) => {
  const s = setup();
  const run = s.start(s.exchange());
  t.same(run.onResponseHeaders(response(429, SSE)), { type: "continue", responseBody: "none" });
  const chunk = utf8(chatStream(CHAT));
  // Another stage streamed it: this stage's hook is still called, and only passes the bytes on.
  t.same(run.onResponseChunk(chunk, true), { type: "forward", bytes: chunk });
  run.onEnd({ answeredBy: "upstream", status: 429, cancelled: false, streamed: true });
  t.same(await registrySamples(s.registry, "guard_streams_total"), []);
  t.same(await registrySamples(s.registry, "guard_tokens_total"), []);
});

t.test("a compressed event stream is left alone", async (t) => {
  const s = setup();
  const run = s.start(s.exchange());
  t.same(run.onResponseHeaders(response(200, { ...SSE, "content-encoding": "gzip" })), {
    type: "continue",
    responseBody: "none",
  });
});

t.test("model versions: the contracts stage's when set, else the header, bounded", async (t) => {
  const s = setup({ modelVersionHeader: "x-version" }, { maxModelVersions: 1 });
  const count = (version: string | undefined, fromContracts?: string) => {
    const exchange = s.exchange();
    const run = s.start(exchange);
    run.onResponseHeaders(response(200, { ...JSON_TYPE, ...(version === undefined ? {} : { "x-version": version }) }));
    run.onResponseBody(utf8(JSON.stringify({ usage: { prompt_tokens: 1 } })));
    if (fromContracts !== undefined) exchange.modelVersion = fromContracts;
    run.onEnd({ answeredBy: "upstream", status: 200, cancelled: false });
  };
  count("v1");
  count("v2");
  count("v1");
  count(undefined);
  count("v3", "v3-from-contracts");
  t.same(
    (await registrySamples(s.registry, "guard_tokens_total")).map((sample) => [
      sample.labels.model_version,
      sample.value,
    ]),
    [
      ["v1", 2],
      ["other", 1],
      ["none", 1],
      ["v3-from-contracts", 1],
    ],
  );
});

t.test("a disabled route, or one the stage has no section for, takes no part", async (t) => {
  const s = setup();
  t.equal(s.stage.start(s.exchange({ route: "off" })), undefined);
  t.equal(s.stage.start(s.exchange({ route: "unknown" })), undefined);
  t.equal(s.stage.name, "usage");
});

t.test("an event beyond the 1 MiB cap is skipped: bytes forwarded unchanged, metering goes on after it", async (t) => {
  const huge = sse({
    ...CHAT,
    object: "chat.completion.chunk",
    choices: [{ index: 0, delta: { content: "x".repeat(1_100_000) } }],
  });
  const usage = sse({ ...CHAT, object: "chat.completion.chunk", choices: [], usage: CHAT.usage });
  for (const every of [4096, 65_536, 2_000_000]) {
    const s = setup();
    const exchange = s.exchange();
    const run = s.start(exchange);
    run.onRequestHeaders();
    run.onResponseHeaders(response(200, SSE));
    feed(t, run, cut(`${huge}${usage}data: [DONE]\n\n`, every), () => s.advance(3));
    run.onEnd(COMPLETED);
    t.equal(await s.sum("guard_tokens_total", { kind: "completion" }), 9, `cut every ${every}: usage after it counted`);
    t.equal(await s.sum("guard_usage_events_skipped_total", { route: "chat" }), 1);
    t.equal(await s.sum("guard_stream_usage_missing_total"), 0);
  }
});

/** An Ollama /api/chat NDJSON stream: `pieces` content lines, then the done line with its counts. */
function ollamaStream(pieces: readonly string[]): string {
  const line = (fields: Record<string, unknown>) =>
    `${JSON.stringify({ model: "llama3.2", created_at: "t", ...fields })}\n`;
  return [
    ...pieces.map((content) => line({ message: { role: "assistant", content }, done: false })),
    line({
      message: { role: "assistant", content: "" },
      done: true,
      done_reason: "stop",
      prompt_eval_count: 26,
      eval_count: 4,
    }),
  ].join("");
}

t.test("NDJSON on a route that declares it: tokens from eval counts, time to first token", async (t) => {
  const s = setup();
  const exchange = s.exchange({ route: "ollama", path: "/api/chat" });
  const run = s.start(exchange);
  run.onRequestHeaders();
  s.advance(40);
  t.same(run.onResponseHeaders(response(200, { "content-type": "application/x-ndjson" })), {
    type: "continue",
    responseBody: "stream",
  });
  const lines = ollamaStream(["Hel", "lo ", "wor", "ld"])
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => utf8(`${line}\n`));
  feed(t, run, lines, () => s.advance(10));
  t.equal(exchange.completionTokens, 4);
  run.onEnd(COMPLETED);
  t.equal(await s.sum("guard_tokens_total", { route: "ollama", kind: "prompt" }), 26);
  t.equal(await s.sum("guard_tokens_total", { route: "ollama", kind: "completion" }), 4);
  t.equal(await s.sum("guard_stream_time_to_first_token_seconds_sum", { route: "ollama" }), 0.05);
  t.equal(await s.sum("guard_streams_total", { route: "ollama", outcome: "completed" }), 1);
});

t.test("NDJSON on a route that does not declare it is a plain body", async (t) => {
  const s = setup();
  const run = s.start(s.exchange({ path: "/v1/x" }));
  run.onRequestHeaders();
  t.same(run.onResponseHeaders(response(200, { "content-type": "application/x-ndjson" })), {
    type: "continue",
    responseBody: "none",
  });
});
