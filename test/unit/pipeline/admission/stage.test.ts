import pino from "pino";
import { Registry } from "prom-client";
import t from "tap";
import { configSchema } from "../../../../src/config/schema.js";
import type { Priority } from "../../../../src/pipeline/admission/priority.js";
import { createAdmissionStage } from "../../../../src/pipeline/admission/stage.js";
import { VirtualClock } from "../../../../src/pipeline/admission/virtual-clock.js";
import { stageConfigs } from "../../../../src/pipeline/build.js";
import type { Exchange, Step } from "../../../../src/pipeline/types.js";
import { registryValue } from "../../../helpers/registry-metrics.js";

const ROUTES = [
  { name: "chat", match: { pathPrefix: "/v1/chat" }, admission: { enabled: true } },
  { name: "health", match: { pathPrefix: "/healthz" }, admission: { enabled: false } },
];

function setup(admission: Record<string, unknown> = {}, routes: readonly Record<string, unknown>[] = ROUTES) {
  const config = configSchema.parse({
    admission: {
      requestWeight: 0,
      limit: { initial: 10, min: 1, max: 10 },
      circuit: { minRequests: 2, openMs: 4_000 },
      ...admission,
    },
    routes,
  });
  const clock = new VirtualClock();
  const registry = new Registry();
  const stage = createAdmissionStage(stageConfigs(config).admission, {
    registry,
    log: pino({ level: "silent" }),
    now: clock.now,
    schedule: clock.schedule,
    random: () => 0,
  });
  const extended: number[] = [];
  const exchange = (
    options: {
      route?: string;
      priority?: Priority;
      tenant?: string;
      cost?: number;
      body?: boolean;
      predicted?: number;
      path?: string;
      tier?: string;
    } = {},
  ): Exchange => {
    const value: Exchange = {
      request: {
        method: "POST",
        path: options.path ?? "/v1/chat",
        authority: "model",
        headers: new Map(),
        requestId: "r",
        endOfStream: options.body === false,
      },
      route: { name: options.route ?? "chat" },
      startedAt: clock.nowMs,
      tenant: options.tenant ?? "anonymous",
      priority: options.priority ?? "standard",
      extendDeadline: (ms) => extended.push(ms),
    };
    if (options.cost !== undefined) value.cost = options.cost;
    if (options.predicted !== undefined) value.predictedLatencyMs = options.predicted;
    if (options.tier !== undefined) value.tier = options.tier;
    return value;
  };
  const metric = (name: string, labels: Record<string, string>): Promise<number | undefined> =>
    registryValue(registry, name, labels);
  return { stage, clock, registry, exchange, extended, metric };
}

async function replyOf(step: Step | Promise<Step> | undefined) {
  const resolved = await step;
  if (resolved?.type !== "reply") throw new Error(`expected a reply, got ${JSON.stringify(resolved)}`);
  return resolved.reply;
}

t.test("routes with admission disabled or unknown get no run", async (t) => {
  const { stage, exchange } = setup();
  t.equal(stage.start(exchange({ route: "health" })), undefined);
  t.equal(stage.start(exchange({ route: "nope" })), undefined);
  t.same([...stage.pools.keys()], ["chat"], "the route is its own domain");
});

t.test("with a body an earlier stage prices: asks for it, admits at the body hook with that cost", async (t) => {
  const { stage, exchange, metric, registry } = setup();
  const ex = exchange({ priority: "critical" });
  // What the complexity stage does when it reads the body to price the request.
  ex.costAwaitsBody = true;
  const run = stage.start(ex);
  t.same(await run?.onRequestHeaders?.(), { type: "continue", needs: { requestBody: true, responseHeaders: true } });
  ex.cost = 4;
  const step = await run?.onRequestBody?.(new Uint8Array());
  t.same(step, {
    type: "continue",
    edits: { metadata: { admission: { priority: "critical", cost: 4, wait_ms: 0 } } },
    needs: { responseHeaders: true },
  });
  t.equal(stage.pools.get("chat")?.inFlightCost, 4);
  t.equal(await metric("guard_admission_admitted_cost_total", { priority: "critical", route: "chat" }), 4);
  t.equal(await metric("guard_admission_inflight_cost", { pool: "chat" }), 4);
  t.equal(await metric("guard_admission_limit_cost", { pool: "chat" }), 10);
  run?.onEnd?.({ status: 200, answeredBy: "upstream", cancelled: false, upstreamLatencyMs: 120 });
  t.equal(stage.pools.get("chat")?.inFlightCost, 0);
  run?.onEnd?.({ status: 200, answeredBy: "upstream", cancelled: false, upstreamLatencyMs: 120 });
  t.equal(stage.pools.get("chat")?.inFlightCost, 0, "released exactly once");
  // The first sample is its own unloaded baseline: ratio 1.
  t.match(await registry.metrics(), /guard_admission_latency_ratio_bucket\{le="1",pool="chat"\} 1/);
});

t.test("with a body nobody prices: admits at request headers without asking for the body", async (t) => {
  const { stage, exchange } = setup();
  const step = await stage.start(exchange())?.onRequestHeaders?.();
  t.match(step, { type: "continue", needs: { responseHeaders: true } });
  t.notOk(step?.type === "continue" && step.needs?.requestBody, "no body requested");
  t.equal(stage.pools.get("chat")?.inFlightCost, 1);
});

t.test("without a body: admits at request headers with the default cost", async (t) => {
  const { stage, exchange } = setup();
  const run = stage.start(exchange({ body: false }));
  const step = await run?.onRequestHeaders?.();
  t.equal(step?.type, "continue");
  t.equal(stage.pools.get("chat")?.inFlightCost, 1);
});

t.test("invalid cost → default, counted", async (t) => {
  const { stage, exchange, metric } = setup();
  const ex = exchange({ body: false, cost: Number.NaN });
  const run = stage.start(ex);
  const step = await run?.onRequestHeaders?.();
  t.match(step, { edits: { metadata: { admission: { priority: "standard", cost: 1 } } } });
  t.equal(await metric("guard_admission_bad_input_total", { kind: "invalid_cost" }), 1);
});

t.test("queue full → 429 with Retry-After and an OpenAI error body on an OpenAI endpoint", async (t) => {
  const { stage, exchange, metric } = setup({ classes: { sheddable: { maxQueue: 0 } } });
  await stage.start(exchange({ body: false, priority: "critical", cost: 10 }))?.onRequestHeaders?.();
  const reply = await replyOf(
    stage.start(exchange({ body: false, priority: "sheddable", path: "/v1/chat/completions" }))?.onRequestHeaders?.(),
  );
  t.equal(reply.status, 429);
  t.equal(reply.reason, "shed.queue_full");
  t.equal(reply.headers["content-type"], "application/json");
  t.equal(reply.headers["retry-after"], "1");
  t.equal(reply.headers["retry-after-ms"], "1000");
  t.equal(reply.headers["cache-control"], "no-store");
  t.same(JSON.parse(String(reply.body)), {
    error: {
      message: "Admission queue full: a sheddable request was not admitted; retry after 1 s",
      type: "rate_limit_error",
      code: "shed.queue_full",
      param: null,
      priority: "sheddable",
      retry_after_seconds: 1,
    },
  });
  t.equal(await metric("guard_shed_total", { reason: "shed.queue_full", priority: "sheddable", route: "chat" }), 1);
});

t.test("held in the queue: extends Envoy's deadline, admitted when budget frees", async (t) => {
  const { stage, exchange, extended, metric } = setup();
  const first = stage.start(exchange({ body: false, priority: "critical", cost: 10 }));
  await first?.onRequestHeaders?.();
  const waiting = stage.start(exchange({ body: false, priority: "critical", cost: 2 }))?.onRequestHeaders?.();
  t.same(extended, [900 + 100], "critical max wait plus the margin");
  t.equal(await metric("guard_admission_queued", { pool: "chat", priority: "critical" }), 1);
  first?.onEnd?.({ status: 200, answeredBy: "upstream", cancelled: false, upstreamLatencyMs: 50 });
  const step = await waiting;
  t.equal(step?.type, "continue");
  t.equal(stage.pools.get("chat")?.inFlightCost, 2);
});

t.test("queue timeout → 429 shed.queue_timeout; wait histogram observed", async (t) => {
  const { stage, exchange, clock, registry } = setup({ classes: { standard: { maxWaitMs: 150 } } });
  await stage.start(exchange({ body: false, priority: "critical", cost: 10 }))?.onRequestHeaders?.();
  const waiting = stage.start(exchange({ body: false, priority: "standard" }))?.onRequestHeaders?.();
  clock.advanceTo(150);
  const reply = await replyOf(waiting);
  t.equal(reply.status, 429);
  t.equal(reply.reason, "shed.queue_timeout");
  const text = await registry.metrics();
  t.match(text, /guard_admission_queue_wait_seconds_bucket\{le="0.25",priority="standard",result="timeout"\} 1/);
  t.match(text, /guard_admission_queue_wait_seconds_bucket\{le="0.1",priority="standard",result="timeout"\} 0/);
});

t.test("cancel while queued: waiter removed, hook settles, nothing leaks", async (t) => {
  const { stage, exchange, registry } = setup();
  const first = stage.start(exchange({ body: false, priority: "critical", cost: 10 }));
  await first?.onRequestHeaders?.();
  const run = stage.start(exchange({ body: false, priority: "standard", cost: 3 }));
  const waiting = run?.onRequestHeaders?.();
  run?.onEnd?.({ answeredBy: "unknown", cancelled: true });
  const reply = await replyOf(waiting);
  t.equal(reply.reason, "shed.cancelled");
  t.equal(stage.pools.get("chat")?.queueLength("standard"), 0);
  first?.onEnd?.({ status: 200, answeredBy: "upstream", cancelled: false, upstreamLatencyMs: 50 });
  t.equal(stage.pools.get("chat")?.inFlightCost, 0);
  t.match(
    await registry.metrics(),
    /guard_admission_queue_wait_seconds_count\{priority="standard",result="cancelled"\} 1/,
  );
  t.notMatch(await registry.metrics(), /guard_shed_total\{reason="shed.cancelled"/, "a gone client is not a shed");
});

t.test("each route is its own domain, each tier of a tiered route too, unless the operator groups them", async (t) => {
  const { stage } = setup({}, [
    { name: "chat", match: { pathPrefix: "/v1/chat" }, complexity: { enabled: true }, admission: { enabled: true } },
    {
      name: "completions",
      match: { pathPrefix: "/v1/completions" },
      complexity: { enabled: true },
      admission: { enabled: true, splitTiers: false },
    },
    { name: "sentiment", match: { pathPrefix: "/v1/predict/sentiment" }, admission: { enabled: true } },
    { name: "eta", match: { pathPrefix: "/v1/predict/eta" }, admission: { enabled: true, pool: "tabular" } },
    { name: "fraud", match: { pathPrefix: "/v1/predict/fraud" }, admission: { enabled: true, pool: "tabular" } },
  ]);
  t.same([...stage.pools.keys()], ["chat/light", "chat/heavy", "completions", "sentiment", "tabular"]);
});

t.test("a pool in a 5xx storm never sheds another pool's traffic; each tier has its own circuit", async (t) => {
  const routes = [
    { name: "chat", match: { pathPrefix: "/v1/chat" }, complexity: { enabled: true }, admission: { enabled: true } },
    { name: "sentiment", match: { pathPrefix: "/v1/predict/sentiment" }, admission: { enabled: true } },
  ];
  const { stage, exchange, metric } = setup({}, routes);
  const fail = async (route: string, tier?: string) => {
    const run = stage.start(exchange({ body: false, route, ...(tier === undefined ? {} : { tier }) }));
    t.equal((await run?.onRequestHeaders?.())?.type, "continue", `${route} admitted while its circuit is closed`);
    run?.onEnd?.({ status: 500, answeredBy: "upstream", cancelled: false, upstreamLatencyMs: 5 });
  };
  await fail("sentiment");
  await fail("sentiment");
  await fail("chat", "heavy");
  await fail("chat", "heavy");
  t.equal(await metric("guard_circuit_state", { pool: "sentiment" }), 2);
  t.equal(await metric("guard_circuit_state", { pool: "chat/heavy" }), 2);
  t.equal(await metric("guard_circuit_state", { pool: "chat/light" }), 0);
  const light = await stage.start(exchange({ body: false, tier: "light" }))?.onRequestHeaders?.();
  t.equal(light?.type, "continue", "the light tier's cluster is healthy: admitted");
  const unpriced = await stage.start(exchange({ body: false }))?.onRequestHeaders?.();
  t.equal(unpriced?.type, "continue", "an unpriced request goes to the first tier's domain");
  const heavy = await replyOf(stage.start(exchange({ body: false, tier: "heavy" }))?.onRequestHeaders?.());
  t.equal(heavy.reason, "shed.circuit_open");
});

t.test("a retry is told by the OpenAI SDKs' retry count or Envoy's attempt count, and counted", async (t) => {
  const { stage, exchange, metric } = setup({ retries: { ratio: 0, minPerSecond: 0, burst: 1 } });
  const send = (headers: Record<string, string>, cost = 1) => {
    const value = exchange({ body: false, cost });
    const sent = value.request.headers as Map<string, string>;
    for (const [name, header] of Object.entries(headers)) sent.set(name, header);
    return stage.start(value)?.onRequestHeaders?.();
  };
  const queued = () => stage.pools.get("chat")?.queueLength("standard");
  t.equal((await send({}, 8))?.type, "continue", "a first attempt fills standard's share");
  void send({ "x-stainless-retry-count": "0" });
  void send({ "x-envoy-attempt-count": "1" });
  t.equal(queued(), 2, "first attempts by either count: queued");
  void send({ "x-stainless-retry-count": "1" });
  t.equal(queued(), 3, "a retry spends the one saved retry and queues");
  const reply = await replyOf(send({ "x-envoy-attempt-count": "3" }));
  t.equal(reply.status, 429);
  t.equal(reply.reason, "shed.retry_budget");
  t.equal(queued(), 3, "answered at once, no queue place taken");
  t.equal(await metric("guard_admission_retries_total", { pool: "chat", result: "shed" }), 1);
  t.equal(await metric("guard_shed_total", { reason: "shed.retry_budget", priority: "standard", route: "chat" }), 1);
});

t.test("upstream 5xx opens the circuit: 503 shed.circuit_open with the cool-down as Retry-After", async (t) => {
  const { stage, exchange, metric, clock } = setup();
  for (let i = 0; i < 2; i++) {
    const run = stage.start(exchange({ body: false }));
    await run?.onRequestHeaders?.();
    run?.onEnd?.({ status: 502, answeredBy: "upstream", cancelled: false, upstreamLatencyMs: 5 });
  }
  t.equal(await metric("guard_circuit_state", { pool: "chat" }), 2);
  clock.advanceTo(1_500);
  const reply = await replyOf(stage.start(exchange({ body: false, priority: "critical" }))?.onRequestHeaders?.());
  t.equal(reply.status, 503);
  t.equal(reply.reason, "shed.circuit_open");
  t.equal(
    reply.headers["retry-after-ms"],
    "3500",
    "2.5 s of cool-down left, then a round trip for the probes (1 s: no normal answer seen yet)",
  );
  t.equal(reply.headers["retry-after"], "4");
  t.equal(reply.headers["content-type"], "application/problem+json", "not an OpenAI endpoint: problem details");
  t.same(JSON.parse(String(reply.body)), {
    type: "urn:inference-guard:problem:shed-circuit-open",
    title: "Upstream unavailable",
    status: 503,
    detail: "a critical request was not admitted; retry after 3.5 s",
    code: "shed.circuit_open",
    priority: "critical",
    retry_after_seconds: 4,
  });
  t.equal(await metric("guard_shed_total", { reason: "shed.circuit_open", priority: "critical", route: "chat" }), 1);
});

t.test("guard replies and early cancels do not count against the upstream", async (t) => {
  const { stage, exchange, metric } = setup();
  for (let i = 0; i < 5; i++) {
    const run = stage.start(exchange({ body: false }));
    await run?.onRequestHeaders?.();
    run?.onEnd?.(
      i % 2 === 0
        ? { status: 500, answeredBy: "guard", reason: "contract.violated", cancelled: false }
        : { answeredBy: "unknown", cancelled: true },
    );
  }
  t.equal(await metric("guard_circuit_state", { pool: "chat" }), 0);
});

t.test("a streamed answer holds its budget to the stream's end; a client leaving mid-stream releases it", async (t) => {
  const { stage, exchange, clock } = setup({ circuit: { minRequests: 1, openMs: 4_000, slowCallMs: 1_000 } });
  const pool = stage.pools.get("chat");
  const sse = { status: 200, headers: new Map([["content-type", "text/event-stream"]]), endOfStream: false };
  const run = stage.start(exchange());
  await run?.onRequestHeaders?.();
  t.same(run?.onResponseHeaders?.(sse), { type: "continue", responseBody: "stream" }, "sees the stream pass");
  const chunk = new TextEncoder().encode("data: {}\n\n");
  t.same(await run?.onResponseChunk?.(chunk, false), { type: "forward", bytes: chunk }, "bytes pass unchanged");
  t.equal(pool?.inFlightCost, 1, "held while the stream runs");
  clock.advanceTo(clock.nowMs + 5_000);
  run?.onEnd?.({ answeredBy: "unknown", status: 200, cancelled: true, streamed: true, upstreamLatencyMs: 40 });
  t.equal(pool?.inFlightCost, 0, "released when the client left");
  t.equal(pool?.circuitState(), "closed", "leaving a long stream after its answer began is no upstream timeout");

  const json = stage.start(exchange());
  await json?.onRequestHeaders?.();
  t.same(
    json?.onResponseHeaders?.({
      status: 200,
      headers: new Map([["content-type", "application/json"]]),
      endOfStream: false,
    }),
    { type: "continue", responseBody: "none" },
    "a JSON answer's body is of no interest",
  );
});

t.test(
  "at release the real cost is counted and compared with the estimate; the budget gets back what it held",
  async (t) => {
    const { stage, exchange, metric } = setup();
    const pool = stage.pools.get("chat");
    const end = { status: 200, answeredBy: "upstream", cancelled: false, upstreamLatencyMs: 120 } as const;
    // Priced by the complexity stage at 1000: 200 for the prompt, 4 per token of the 200 output tokens
    // it expected. The upstream reported 50: the real cost is 200 + 4 × 50 = 400.
    const answered = exchange({ cost: 1_000 });
    answered.outputPricing = { expectedTokens: 200, costPerToken: 4 };
    const run = stage.start(answered);
    await run?.onRequestHeaders?.();
    answered.completionTokens = 50;
    t.equal(pool?.inFlightCost, 1_000);
    run?.onEnd?.(end);
    t.equal(pool?.inFlightCost, 0);
    const labels = { priority: "standard", route: "chat" };
    t.equal(await metric("guard_admission_admitted_cost_total", labels), 1_000);
    t.equal(await metric("guard_admission_released_cost_total", { ...labels, basis: "actual" }), 400);
    t.equal(await metric("guard_admission_cost_ratio_sum", { route: "chat" }), 0.4);

    // No usage reported, or no estimate to correct (admitted at the default cost): the estimate stands.
    const unreported = exchange({ cost: 300 });
    unreported.outputPricing = { expectedTokens: 50, costPerToken: 4 };
    const unpriced = exchange({ body: false });
    unpriced.outputPricing = { expectedTokens: 0, costPerToken: 4 };
    unpriced.completionTokens = 10;
    for (const ex of [unreported, unpriced]) {
      const next = stage.start(ex);
      await next?.onRequestHeaders?.();
      next?.onEnd?.(end);
    }
    t.equal(await metric("guard_admission_released_cost_total", { ...labels, basis: "estimate" }), 301);
    t.equal(await metric("guard_admission_cost_ratio_count", { route: "chat" }), 1);
  },
);

t.test("an exchange that never ends returns its budget after admission.maxHoldMs, once", async (t) => {
  const { stage, exchange, clock, metric } = setup({ maxHoldMs: 60_000 });
  const stuck = stage.start(exchange({ body: false, cost: 4 }));
  await stuck?.onRequestHeaders?.();
  const normal = stage.start(exchange({ body: false, cost: 2 }));
  await normal?.onRequestHeaders?.();
  normal?.onEnd?.({ status: 200, answeredBy: "upstream", cancelled: false, upstreamLatencyMs: 50 });
  clock.advanceTo(59_999);
  t.equal(stage.pools.get("chat")?.inFlightCost, 4, "held until the limit");
  clock.advanceTo(60_000);
  t.equal(stage.pools.get("chat")?.inFlightCost, 0);
  t.equal(await metric("guard_admission_hold_expired_total", { pool: "chat" }), 1, "the ended one never expired");
  t.equal(
    await metric("guard_admission_released_cost_total", { priority: "standard", route: "chat", basis: "expired" }),
    4,
  );
  t.equal(stage.pools.get("chat")?.circuitState(), "closed", "the upstream was told nothing");
  stuck?.onEnd?.({ status: 200, answeredBy: "upstream", cancelled: false, upstreamLatencyMs: 60_000 });
  t.equal(stage.pools.get("chat")?.inFlightCost, 0, "a late end returns nothing twice");
  t.equal(await metric("guard_admission_hold_expired_total", { pool: "chat" }), 1);
});
