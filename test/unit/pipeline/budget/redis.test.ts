// Tenant budgets shared through a real redis-server, and through a real Redis Cluster (where the
// admission script's keys must hash to one slot): two budget stages (as two sidecars would have)
// count against one budget, not two; with Redis gone each decides from its own counts.
import { performance } from "node:perf_hooks";
import { pino } from "pino";
import { Registry } from "prom-client";
import t, { type Test } from "tap";
import { configSchema } from "../../../../src/config/schema.js";
import { type BudgetStage, createBudgetStage } from "../../../../src/pipeline/budget/stage.js";
import { stageConfigs } from "../../../../src/pipeline/build.js";
import type { Step } from "../../../../src/pipeline/types.js";
import { chatExchange } from "../../../helpers/exchange.js";
import { type SharedRedisUnderTest, sharedRedisKinds } from "../../../helpers/redis.js";
import { registrySum } from "../../../helpers/registry-metrics.js";

interface Sidecar {
  readonly stage: BudgetStage;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

function sidecar(where: Record<string, unknown>, wallClock: () => number): Sidecar {
  const config = configSchema.parse({
    budget: { redis: { ...where, timeoutMs: 200, probeIntervalMs: 100, keyPrefix: `test:${process.pid}:` } },
    routes: [
      {
        name: "chat",
        match: { pathPrefix: "/v1/chat" },
        budget: { enabled: true, requestsPerMinute: 4, tokensPerMinute: 1_000 },
      },
    ],
  });
  const registry = new Registry();
  const stage = createBudgetStage(stageConfigs(config).budget, {
    registry,
    log: pino({ level: "silent" }),
    now: () => performance.now(),
    wallClock,
  });
  return { stage, metric: (name, labels = {}) => registrySum(registry, name, labels) };
}

async function send(side: Sidecar, tenant: string, completionTokens?: number): Promise<Step> {
  const exchange = chatExchange({
    request: { ...chatExchange().request, endOfStream: true },
    tenant,
    promptTokens: 100,
    ...(completionTokens === undefined ? {} : { completionTokens }),
  });
  const run = side.stage.start(exchange);
  const step = (await run?.onRequestHeaders?.()) as Step;
  run?.onEnd?.({ status: 200, answeredBy: "upstream", cancelled: false });
  return step;
}

for (const { name, start } of sharedRedisKinds)
  t.test(`two sidecars share one budget per tenant through ${name}`, async (t) => {
    const redis = await start();
    t.teardown(() => redis.stop());
    await sharesOneBudget(t, redis);
  });

async function sharesOneBudget(t: Test, redis: SharedRedisUnderTest): Promise<void> {
  // Mid-minute, so no minute boundary falls inside the test.
  const wall = () => 60_000 * Math.floor(Date.now() / 60_000) + 1_000 + (performance.now() % 1_000);
  const [a, b] = [sidecar(redis.section, wall), sidecar(redis.section, wall)] as const;
  t.teardown(() => Promise.all([a.stage.close?.(), b.stage.close?.()]));
  t.same(await Promise.all([a.stage.ledger.connected(5_000), b.stage.ledger.connected(5_000)]), [true, true]);
  const types = [];
  for (const side of [a, b, a, b, a, b]) types.push((await send(side, "alice")).type);
  t.same(types, ["continue", "continue", "continue", "continue", "reply", "reply"], "4 requests per minute in all");
  t.equal(await a.metric("guard_budget_requests_total", { result: "admitted", source: "shared" }), 2);
  t.equal(await b.metric("guard_budget_requests_total", { result: "over_requests", source: "shared" }), 1);
  t.equal((await send(b, "bob")).type, "continue", "another tenant has its own budget");

  // Tokens: 100 prompt each, and the completion tokens reported at the end, counted on either side.
  t.equal((await send(a, "carol", 500)).type, "continue");
  t.equal((await send(b, "carol", 300)).type, "continue", "600 of 1000 used");
  await new Promise((resolve) => setTimeout(resolve, 50)); // the completion counts are fire-and-forget
  const over = await send(a, "carol");
  t.equal(over.type, "reply", "1000 used: over the token budget");
  if (over.type === "reply") {
    t.equal(over.reply.reason, "budget.tokens");
    t.equal(over.reply.headers["x-ratelimit-remaining-tokens"], "0");
    t.equal(over.reply.headers["x-ratelimit-remaining-requests"], "2");
  }

  await redis.stop();
  t.equal((await send(a, "dave")).type, "continue", "Redis gone: decided locally, nothing fails");
  t.equal((await a.metric("guard_budget_requests_total", { result: "admitted", source: "local" })) >= 1, true);
  for (let waited = 0; waited < 3_000 && (await a.metric("guard_budget_redis_up")) !== 0; waited += 50)
    await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(await a.metric("guard_budget_redis_up"), 0, "the lost connection is seen");
}
