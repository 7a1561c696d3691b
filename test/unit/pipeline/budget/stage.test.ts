import pino from "pino";
import { Registry } from "prom-client";
import t from "tap";
import { configSchema } from "../../../../src/config/schema.js";
import { createBudgetStage, resetDuration } from "../../../../src/pipeline/budget/stage.js";
import { stageConfigs } from "../../../../src/pipeline/build.js";
import type { Exchange, Outcome, Step } from "../../../../src/pipeline/types.js";
import { chatExchange } from "../../../helpers/exchange.js";
import { registryValue } from "../../../helpers/registry-metrics.js";

function setup(budget: Record<string, unknown>) {
  const config = configSchema.parse({
    routes: [
      { name: "chat", match: { pathPrefix: "/v1/chat" }, budget: { enabled: true, ...budget } },
      { name: "free", match: { pathPrefix: "/free" } },
    ],
  });
  let wall = 60_000 * 1_000 + 20_000;
  const registry = new Registry();
  const stage = createBudgetStage(stageConfigs(config).budget, {
    registry,
    log: pino({ level: "silent" }),
    now: () => 0,
    wallClock: () => wall,
  });
  const exchange = (tenant: string, extra: Partial<Exchange> = {}): Exchange => chatExchange({ tenant, ...extra });
  /** One whole exchange; returns its request step and the response headers the stage set. */
  const call = async (tenant: string, extra: Partial<Exchange> = {}, outcome?: Partial<Outcome>) => {
    const value = exchange(tenant, extra);
    const run = stage.start(value);
    const step = (await run?.onRequestHeaders?.()) as Step;
    let headers: Readonly<Record<string, string>> | undefined;
    if (step.type === "continue") {
      const response = run?.onResponseHeaders?.({ status: 200, headers: new Map(), endOfStream: false }) as Step;
      headers = response.type === "continue" ? response.edits?.setHeaders : undefined;
    }
    run?.onEnd?.({ status: 200, answeredBy: "upstream", cancelled: false, ...outcome });
    return { step, headers };
  };
  return {
    stage,
    exchange,
    call,
    advance: (ms: number) => {
      wall += ms;
    },
    metric: (name: string, labels: Record<string, string>) => registryValue(registry, name, labels),
  };
}

t.test("requests per minute: the tenant over it gets 429 budget.requests with OpenAI's headers", async (t) => {
  const { call, advance, metric } = setup({ requestsPerMinute: 2 });
  t.same((await call("alice")).headers, {
    "x-ratelimit-limit-requests": "2",
    "x-ratelimit-remaining-requests": "1",
    "x-ratelimit-reset-requests": "40s",
  });
  t.equal((await call("alice")).headers?.["x-ratelimit-remaining-requests"], "0");
  const { step } = await call("alice");
  if (step.type !== "reply") throw new Error("expected a reply");
  t.equal(step.reply.status, 429);
  t.equal(step.reply.reason, "budget.requests");
  t.match(step.reply.headers, {
    "retry-after": "40",
    "x-ratelimit-limit-requests": "2",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-reset-requests": "40s",
  });
  t.match(JSON.parse(String(step.reply.body)), {
    error: { type: "rate_limit_error", code: "budget.requests", limit: 2, retry_after_seconds: 40 },
  });
  t.equal((await call("bob")).step.type, "continue", "another tenant has its own budget");
  advance(40_000 + 45_000); // 45 s into the next minute: a quarter of the previous one still counts
  t.equal((await call("alice")).step.type, "continue", "the window forgot enough");
  t.equal(await metric("guard_budget_requests_total", { route: "chat", tenant: "alice", result: "over_requests" }), 1);
  t.equal(await metric("guard_budget_requests_total", { route: "chat", tenant: "alice", result: "admitted" }), 3);
});

t.test("tokens per minute: prompt tokens at the request, completion tokens at the end", async (t) => {
  const { call, metric } = setup({ tokensPerMinute: 1_000 });
  const priced = { promptTokens: 300, outputPricing: { expectedTokens: 500, costPerToken: 4 } };
  t.equal((await call("alice", { ...priced, completionTokens: 200 })).headers?.["x-ratelimit-remaining-tokens"], "700");
  t.equal((await call("alice", priced)).step.type, "continue", "500 used: room left");
  // No usage reported: the completion counts as estimated (500): 300 + 200 + 300 + 500 = 1300.
  const { step } = await call("alice", priced);
  if (step.type !== "reply") throw new Error("expected a reply");
  t.equal(step.reply.reason, "budget.tokens");
  t.equal(step.reply.headers["x-ratelimit-remaining-tokens"], "0");
  t.equal(await metric("guard_budget_tokens_total", { route: "chat", tenant: "alice", kind: "prompt" }), 600);
  t.equal(await metric("guard_budget_tokens_total", { route: "chat", tenant: "alice", kind: "completion" }), 200);
  t.equal(
    await metric("guard_budget_tokens_total", { route: "chat", tenant: "alice", kind: "completion_estimate" }),
    500,
  );
});

t.test("a guard answer or a failed call costs no completion tokens", async (t) => {
  const { call, stage } = setup({ tokensPerMinute: 1_000 });
  const priced = { promptTokens: 10, outputPricing: { expectedTokens: 500, costPerToken: 4 } };
  await call("alice", priced, { answeredBy: "guard", status: 502 });
  t.equal(stage.ledger.windows.usage("chat:alice").tokens, 10);
});

t.test("waits for the body when the prompt is priced there; untouched routes get no run", async (t) => {
  const { stage, exchange } = setup({ tokensPerMinute: 1_000 });
  const run = stage.start(exchange("anonymous", { costAwaitsBody: true }));
  t.same(run?.onRequestHeaders?.(), { type: "continue", needs: { requestBody: true, responseHeaders: true } });
  t.equal((await run?.onRequestBody?.(new Uint8Array()))?.type, "continue");
  t.equal(stage.ledger.windows.usage("chat:anonymous").requests, 1, "keyed by the exchange's tenant");
  t.equal(stage.start(exchange("alice", { route: { name: "free" } })), undefined);
});

t.test("an enabled budget without a limit is a config error naming its path", async (t) => {
  const parsed = configSchema.safeParse({ routes: [{ name: "chat", budget: { enabled: true } }] });
  t.equal(parsed.success, false);
  t.match(parsed.error?.issues[0], { path: ["routes", 0, "budget", "enabled"] });
});

t.test("OpenAI's reset durations", async (t) => {
  t.same([0, 17, 999, 1_000, 1_001, 59_000, 60_000, 361_000].map(resetDuration), [
    "0ms",
    "17ms",
    "999ms",
    "1s",
    "2s",
    "59s",
    "1m0s",
    "6m1s",
  ]);
});

t.test("metrics name the ten heaviest tenants of the last minute, not the first ten seen", async (t) => {
  const { call, metric } = setup({ requestsPerMinute: 1_000 });
  for (let i = 0; i < 10; i++) await call(`early-${i}`);
  await call("late-heavy");
  t.equal(await metric("guard_budget_requests_total", { route: "chat", tenant: "other", result: "admitted" }), 1);
  for (let i = 0; i < 5; i++) await call("late-heavy");
  t.equal(
    await metric("guard_budget_requests_total", { route: "chat", tenant: "late-heavy", result: "admitted" }),
    4,
    "named once it outweighed a named tenant (from its third call: one request each before that)",
  );
  t.equal(await metric("guard_budget_requests_total", { route: "chat", tenant: "other", result: "admitted" }), 2);
});
