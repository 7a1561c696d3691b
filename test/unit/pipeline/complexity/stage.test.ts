import pino from "pino";
import { Registry } from "prom-client";
import t from "tap";
import { configSchema } from "../../../../src/config/schema.js";
import { stageConfigs } from "../../../../src/pipeline/build.js";
import { estimateBody } from "../../../../src/pipeline/complexity/estimate.js";
import { LatencyModel } from "../../../../src/pipeline/complexity/model.js";
import { OutputEstimate } from "../../../../src/pipeline/complexity/output.js";
import { createComplexityStage } from "../../../../src/pipeline/complexity/stage.js";
import { estimateTextTokens } from "../../../../src/pipeline/complexity/tokens.js";
import type { Exchange, Outcome, StageRun, Step } from "../../../../src/pipeline/types.js";
import { registryValue } from "../../../helpers/registry-metrics.js";
import { fixtureBytes } from "./fixtures.js";

function setup(complexity: Record<string, unknown> = {}) {
  const config = configSchema.parse({
    routes: [
      { name: "chat", match: { pathPrefix: "/v1" }, complexity: { enabled: true, ...complexity } },
      { name: "plain", match: {} },
    ],
  });
  const registry = new Registry();
  const stage = createComplexityStage(stageConfigs(config).complexity, {
    registry,
    log: pino({ level: "silent" }),
    now: () => 0,
  });
  return { stage, registry };
}

function exchange(route: string, path: string, headers: Record<string, string> = {}, endOfStream = false): Exchange {
  return {
    request: {
      method: "POST",
      path,
      authority: "guard.test",
      headers: new Map(Object.entries(headers)),
      requestId: "r1",
      endOfStream,
    },
    route: { name: route },
    startedAt: 0,
    tenant: "anonymous",
    priority: "standard",
    extendDeadline: () => undefined,
  };
}

function edits(step: Step) {
  return step.type === "continue" ? step.edits : undefined;
}

const upstreamOk: Outcome = { status: 200, answeredBy: "upstream", cancelled: false, upstreamLatencyMs: 850 };

t.test("routes without complexity are not touched", async (t) => {
  const { stage } = setup();
  t.equal(stage.name, "complexity");
  t.equal(stage.start(exchange("plain", "/v1/chat/completions")), undefined);
  t.equal(stage.model("plain"), undefined);
});

t.test("a request with a body asks for it, then scores, tiers and sets the timeout", async (t) => {
  const { stage, registry } = setup({
    tiers: [
      { name: "light", minCost: 0 },
      { name: "heavy", minCost: 8000 },
    ],
  });
  const ex = exchange("chat", "/v1/chat/completions");
  const run = stage.start(ex) as StageRun;
  const first = (await run.onRequestHeaders?.()) as Step;
  t.same(first, { type: "continue", needs: { requestBody: true, responseHeaders: true } });
  const step = (await run.onRequestBody?.(fixtureBytes("chat-multilingual.json"))) as Step;
  const applied = edits(step);
  t.equal(ex.tier, "heavy", "4096 output budget × 4 + ~3.5k prompt tokens");
  t.ok(ex.cost !== undefined && ex.cost > 8000);
  t.equal(ex.predictedLatencyMs, undefined, "the prior's guess is not published to admission");
  t.equal(ex.requestModel, "gpt-4o", "the asked model, for traces");
  t.equal(applied?.clearRouteCache, true);
  t.equal(applied?.setHeaders?.["x-guard-tier"], "heavy");
  const metadata = applied?.metadata as { complexity: { predictedLatencyMs: number } } | undefined;
  const priorPrediction = metadata?.complexity.predictedLatencyMs ?? 0;
  t.ok(priorPrediction > 0);
  // The metadata carries the prediction rounded to whole ms: the timeout (× 3) agrees within 3 ms.
  const timeout = Number(applied?.setHeaders?.["x-envoy-upstream-rq-timeout-ms"]);
  t.ok(
    Math.abs(timeout - Math.min(120_000, Math.max(1000, priorPrediction * 3))) <= 3,
    `timeout ${timeout} from the prior's prediction`,
  );
  t.match(applied?.metadata, { complexity: { tier: "heavy" } });
  t.equal(await registryValue(registry, "guard_complexity_tier_decisions_total", { route: "chat", tier: "heavy" }), 1);
  t.equal(await registryValue(registry, "guard_request_cost_count", { route: "chat", tier: "heavy" }), 1);
  t.equal(await registryValue(registry, "guard_estimated_input_tokens_count", { route: "chat", tier: "heavy" }), 1);

  ex.completionTokens = 700;
  run.onEnd?.(upstreamOk);
  t.equal(stage.model("chat")?.samples, 1);
  t.equal(
    await registryValue(registry, "guard_complexity_model_updates_total", { route: "chat", result: "fitted" }),
    1,
  );
  t.equal(await registryValue(registry, "guard_complexity_latency_ratio_count", { route: "chat" }), 1);
  t.ok((await registryValue(registry, "guard_complexity_model_residual_variance", { route: "chat" })) !== undefined);
  t.ok(
    (await registryValue(registry, "guard_complexity_model_coefficient", {
      route: "chat",
      feature: "output_ktokens",
    })) !== undefined,
  );
  t.equal(await registryValue(registry, "guard_complexity_model_fitted", { route: "chat" }), 0);
});

t.test("a request without a body is scored at request headers", async (t) => {
  const { stage, registry } = setup({ timeout: { header: "" } });
  const ex = exchange("chat", "/v1/models", {}, true);
  const step = (await stage.start(ex)?.onRequestHeaders?.()) as Step;
  t.same(step.type === "continue" ? step.needs : undefined, { responseHeaders: true });
  t.same(edits(step)?.setHeaders, { "x-guard-tier": "light" }, "timeout header disabled");
  t.equal(ex.cost, 0);
  t.equal(await registryValue(registry, "guard_complexity_estimate_fallbacks_total", { route: "chat" }), undefined);
});

t.test("an announced oversized body is scored by its length without buffering", async (t) => {
  const { stage, registry } = setup({ maxBodyBytes: 1000 });
  const ex = exchange("chat", "/v1/chat/completions", { "content-length": "4194304" });
  const run = stage.start(ex) as StageRun;
  const step = (await run.onRequestHeaders?.()) as Step;
  t.same(step.type === "continue" ? step.needs : undefined, { responseHeaders: true });
  t.equal(ex.tier, "heavy", "4 MiB × 256 per KiB");
  t.equal(
    await registryValue(registry, "guard_complexity_estimate_fallbacks_total", { route: "chat", reason: "too_large" }),
    1,
  );
  t.equal(
    await run.onRequestBody?.(new Uint8Array(10)),
    (await import("../../../../src/pipeline/types.js")).CONTINUE,
    "a body another stage asked for is ignored",
  );
});

t.test("the asked model is kept as the client sent it, cut to 256 characters", async (t) => {
  const { stage } = setup();
  for (const [model, kept] of [
    ["m".repeat(300), "m".repeat(256)],
    [42, undefined],
  ] as const) {
    const ex = exchange("chat", "/v1/chat/completions");
    const run = stage.start(ex) as StageRun;
    await run.onRequestHeaders?.();
    await run.onRequestBody?.(new TextEncoder().encode(JSON.stringify({ model, messages: [] })));
    t.equal(ex.requestModel, kept);
  }
});

t.test("bad bodies are counted and still routed", async (t) => {
  const { stage, registry } = setup();
  for (const body of ["not json", '{"messages": [', `{"x":${"[".repeat(100_000)}`]) {
    const ex = exchange("chat", "/v1/chat/completions");
    const run = stage.start(ex) as StageRun;
    await run.onRequestHeaders?.();
    edits((await run.onRequestBody?.(new TextEncoder().encode(body))) as Step);
    t.ok(ex.tier !== undefined);
  }
  for (const reason of ["non_json", "truncated", "too_deep"]) {
    t.equal(
      await registryValue(registry, "guard_complexity_estimate_fallbacks_total", { route: "chat", reason }),
      1,
      reason,
    );
  }
});

t.test("the model learns only from complete upstream answers", async (t) => {
  const { stage, registry } = setup();
  const outcomes: Outcome[] = [
    { status: 200, answeredBy: "guard", reason: "cache.hit", cancelled: false },
    { status: 200, answeredBy: "upstream", cancelled: true, upstreamLatencyMs: 100 },
    { status: 503, answeredBy: "upstream", cancelled: false, upstreamLatencyMs: 5 },
    { status: 200, answeredBy: "upstream", cancelled: false },
  ];
  for (const outcome of outcomes) {
    const run = stage.start(exchange("chat", "/v1/chat/completions")) as StageRun;
    await run.onRequestHeaders?.();
    await run.onRequestBody?.(fixtureBytes("chat-images.json"));
    run.onEnd?.(outcome);
  }
  const streamed = stage.start(exchange("chat", "/v1/chat/completions")) as StageRun;
  await streamed.onRequestHeaders?.();
  await streamed.onRequestBody?.(fixtureBytes("chat-tools.json"));
  streamed.onEnd?.(upstreamOk);
  const unscored = stage.start(exchange("chat", "/v1/chat/completions")) as StageRun;
  unscored.onEnd?.(upstreamOk);
  t.equal(stage.model("chat")?.samples, 0);
  t.equal(
    await registryValue(registry, "guard_complexity_model_updates_total", { route: "chat", result: "skipped_status" }),
    1,
  );
  t.equal(
    await registryValue(registry, "guard_complexity_model_updates_total", {
      route: "chat",
      result: "skipped_streamed",
    }),
    1,
  );
});

t.test("exact tokenizer mode loads lazily and counts special-token text as text", async (t) => {
  const { stage } = setup({ tokenizer: { mode: "exact" } });
  await stage.warmUp();
  const ex = exchange("chat", "/v1/embeddings");
  const run = stage.start(ex) as StageRun;
  await run.onRequestHeaders?.();
  await run.onRequestBody?.(new TextEncoder().encode(JSON.stringify({ input: "hello <|endoftext|> world" })));
  t.ok(ex.cost !== undefined && ex.cost > 3 && ex.cost < 20, `cost ${ex.cost}`);
});

t.test("the predicted latency reaches later stages only once the model is fitted", async (t) => {
  const { stage } = setup({ model: { minSamples: 2 } });
  const published: (number | undefined)[] = [];
  for (let i = 0; i < 3; i++) {
    const ex = exchange("chat", "/v1/chat/completions");
    const run = stage.start(ex) as StageRun;
    await run.onRequestHeaders?.();
    await run.onRequestBody?.(fixtureBytes("chat-multilingual.json"));
    published.push(ex.predictedLatencyMs);
    ex.completionTokens = 700;
    run.onEnd?.(upstreamOk);
  }
  t.equal(published[0], undefined);
  t.equal(published[1], undefined);
  t.ok(published[2] !== undefined && published[2] > 0, "fitted after two samples");
});

t.test("a streamed request gets the ceiling timeout: the upstream timeout spans the whole stream", async (t) => {
  const { stage } = setup();
  const run = stage.start(exchange("chat", "/v1/chat/completions")) as StageRun;
  await run.onRequestHeaders?.();
  const body = { model: "m", stream: true, max_tokens: 10, messages: [{ role: "user", content: "hi" }] };
  const step = (await run.onRequestBody?.(new TextEncoder().encode(JSON.stringify(body)))) as Step;
  t.equal(edits(step)?.setHeaders?.["x-envoy-upstream-rq-timeout-ms"], "120000");
  const unstreamed = stage.start(exchange("chat", "/v1/chat/completions")) as StageRun;
  await unstreamed.onRequestHeaders?.();
  const short = (await unstreamed.onRequestBody?.(
    new TextEncoder().encode(JSON.stringify({ ...body, stream: false })),
  )) as Step;
  t.ok(Number(edits(short)?.setHeaders?.["x-envoy-upstream-rq-timeout-ms"]) < 120_000, "from the prediction");
});

/** A chat request's body; `max_tokens` and `stream` only when given. */
function chatBody(options: { maxTokens?: number; stream?: boolean } = {}): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      model: "m",
      messages: [{ role: "user", content: "Summarise the meeting notes." }],
      ...(options.maxTokens === undefined ? {} : { max_tokens: options.maxTokens }),
      ...(options.stream === undefined ? {} : { stream: options.stream }),
    }),
  );
}

/** Scores one request on `route`'s stage and returns its exchange and run, ready to end. */
async function scored(stage: ReturnType<typeof setup>["stage"], body: Uint8Array, path = "/v1/chat/completions") {
  const ex = exchange("chat", path);
  const run = stage.start(ex) as StageRun;
  await run.onRequestHeaders?.();
  await run.onRequestBody?.(body);
  return { ex, run };
}

t.test("a route whose answers are always ~500 completion tokens moves its estimate toward 500", async (t) => {
  const { stage, registry } = setup({ output: { minSamples: 5, memory: 20 } });
  const first = await scored(stage, chatBody());
  const costAtDefault = first.ex.cost ?? 0;
  t.same(first.ex.outputPricing, { expectedTokens: 256, costPerToken: 4 }, "defaultMaxOutputTokens until learned");
  first.ex.completionTokens = 480;
  first.run.onEnd?.(upstreamOk);
  for (const tokens of [510, 495, 505, 490, 520, 500, 498, 502]) {
    const { ex, run } = await scored(stage, chatBody());
    ex.completionTokens = tokens;
    run.onEnd?.(upstreamOk);
  }
  const learned = stage.output("chat")?.tokens ?? 0;
  t.ok(Math.abs(learned - 500) < 10, `learned ${learned.toFixed(1)} tokens per answer`);
  t.equal(await registryValue(registry, "guard_complexity_output_tokens_estimate", { route: "chat" }), learned);
  t.equal(
    await registryValue(registry, "guard_complexity_output_updates_total", { route: "chat", result: "learned" }),
    9,
  );
  t.equal(await registryValue(registry, "guard_complexity_output_ratio_count", { route: "chat", tier: "light" }), 9);

  const next = await scored(stage, chatBody());
  t.equal(next.ex.outputPricing?.expectedTokens, learned, "the next request is priced at the learned size");
  t.ok(
    Math.abs((next.ex.cost ?? 0) - (costAtDefault + 4 * (learned - 256))) < 1e-6,
    `cost ${costAtDefault} → ${next.ex.cost}: 4 cost units per expected output token`,
  );
  const clamped = await scored(stage, chatBody({ maxTokens: 100 }));
  t.equal(clamped.ex.outputPricing?.expectedTokens, 100, "max_tokens clamps the learned size");
  const generous = await scored(stage, chatBody({ maxTokens: 4000 }));
  t.equal(generous.ex.outputPricing?.expectedTokens, learned, "a generous max_tokens is a ceiling, not a forecast");
});

t.test("with output.learn off, a request is priced at its max_tokens whatever was reported", async (t) => {
  const { stage } = setup({ output: { learn: false, minSamples: 1 } });
  for (let i = 0; i < 3; i++) {
    const { ex, run } = await scored(stage, chatBody());
    ex.completionTokens = 20;
    run.onEnd?.(upstreamOk);
  }
  t.equal(stage.output("chat")?.samples, 0);
  t.equal((await scored(stage, chatBody({ maxTokens: 4000 }))).ex.outputPricing?.expectedTokens, 4000);
  t.equal((await scored(stage, chatBody())).ex.outputPricing?.expectedTokens, 256);
  t.equal(stage.model("chat")?.samples, 3, "the latency model still learns from the reports");
});

t.test(
  "no usage reported: the output estimate learns nothing, the latency model fits the request as predicted",
  async (t) => {
    const { stage, registry } = setup({ output: { minSamples: 1 } });
    for (let i = 0; i < 3; i++) (await scored(stage, chatBody({ maxTokens: 300 }))).run.onEnd?.(upstreamOk);
    t.equal(stage.output("chat")?.samples, 0);
    t.equal(stage.output("chat")?.tokens, 256, "still the default");
    t.equal(
      await registryValue(registry, "guard_complexity_output_updates_total", {
        route: "chat",
        result: "skipped_no_usage",
      }),
      3,
    );
    t.equal(stage.model("chat")?.samples, 3, "the latency was real: learned with the expected output");
    t.equal(await registryValue(registry, "guard_complexity_latency_ratio_count", { route: "chat" }), 3);
    // A request that generates nothing has no output to guess: its latency is learned as it is.
    const embedding = await scored(
      stage,
      new TextEncoder().encode(JSON.stringify({ model: "m", input: "hello" })),
      "/v1/embeddings",
    );
    embedding.run.onEnd?.(upstreamOk);
    t.equal(stage.model("chat")?.samples, 4);
    t.equal(stage.output("chat")?.samples, 0, "and teaches nothing about output");
  },
);

t.test("the latency model learns from the produced output and a stream's whole generation time", async (t) => {
  const { stage, registry } = setup({ model: { minSamples: 1 } });
  const config = configSchema.parse({
    routes: [{ name: "chat", complexity: { enabled: true, model: { minSamples: 1 } } }],
  }).routes[0]?.complexity;
  if (config === undefined) throw new Error("config");
  const { ex, run } = await scored(stage, chatBody({ maxTokens: 1000, stream: true }));
  const features = estimateBody("/v1/chat/completions", chatBody({ maxTokens: 1000, stream: true }), {
    maxBodyBytes: config.maxBodyBytes,
    maxDepth: config.maxDepth,
    expectedOutput: (ask) => new OutputEstimate(config.output, config.defaultMaxOutputTokens).expected(ask),
    countTokens: estimateTextTokens,
  }).features;
  t.equal(features.outputTokens, 1000, "predicted from the expected output: its max_tokens");
  const predicted = new LatencyModel(config.model).predict(features);
  ex.completionTokens = 300;
  // Headers (the first token) after 150 ms, the last event 6 s after the release.
  run.onEnd?.({ ...upstreamOk, streamed: true, upstreamLatencyMs: 150, generationMs: 6_000 });
  const model = stage.model("chat");
  t.equal(model?.samples, 1, "a streamed answer followed to its end teaches the model");
  const producedFit = new LatencyModel(config.model);
  producedFit.update({ ...features, outputTokens: 300 }, 6_000);
  const expectedFit = new LatencyModel(config.model);
  expectedFit.update(features, 6_000);
  t.same([...(model?.coefficients() ?? [])], [...producedFit.coefficients()], "fitted on the 300 tokens produced");
  t.notSame([...producedFit.coefficients()], [...expectedFit.coefficients()], "not on the 1000 expected");
  t.ok(
    Math.abs(
      ((await registryValue(registry, "guard_complexity_latency_ratio_sum", { route: "chat" })) ?? 0) -
        6_000 / predicted,
    ) < 1e-9,
    "the ratio compares the whole generation with the prediction",
  );

  const unfollowed = await scored(stage, chatBody({ stream: true }));
  unfollowed.ex.completionTokens = 300;
  unfollowed.run.onEnd?.({ ...upstreamOk, upstreamLatencyMs: 150 });
  t.equal(model?.samples, 1, "a stream whose end the guard did not see only showed its first token");
  t.equal(
    await registryValue(registry, "guard_complexity_model_updates_total", {
      route: "chat",
      result: "skipped_streamed",
    }),
    1,
  );
});

t.test(
  "contextWindow: a prompt estimated beyond it is answered, a smaller one and a size-scored body go on",
  async (t) => {
    const { stage } = setup({ contextWindow: 100 });
    const chat = (content: string) =>
      new TextEncoder().encode(JSON.stringify({ model: "m", messages: [{ role: "user", content }] }));
    const long = stage.start(exchange("chat", "/v1/chat/completions")) as StageRun;
    const step = (await long.onRequestBody?.(chat("tell me about the lighthouse keeper ".repeat(40)))) as Step;
    t.equal(step.type, "reply");
    if (step.type !== "reply") return;
    t.equal(step.reply.status, 400);
    t.equal(step.reply.reason, "request.context_length_exceeded");
    const error = (JSON.parse(step.reply.body as string) as { error: Record<string, unknown> }).error;
    t.match(error, { type: "invalid_request_error", code: "request.context_length_exceeded", route: "chat" });
    t.equal(error.context_window, 100);
    t.ok((error.estimated_prompt_tokens as number) > 100, `estimated ${error.estimated_prompt_tokens}`);
    t.equal(step.reply.headers["x-should-retry"], "false", "asking again gets the same answer");

    const short = stage.start(exchange("chat", "/v1/chat/completions")) as StageRun;
    const fits = (await short.onRequestBody?.(chat("hello"))) as Step;
    t.equal(fits.type, "continue");
    const notJson = stage.start(exchange("chat", "/v1/chat/completions")) as StageRun;
    const sized = (await notJson.onRequestBody?.(new TextEncoder().encode("x".repeat(4_000)))) as Step;
    t.equal(sized.type, "continue", "a body the estimate could not read is never refused by the window");
  },
);
