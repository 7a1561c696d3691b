// Tenant budgets through the real Envoy 1.40: two sidecars (two Envoy + guard stacks, as two pods
// would run) share one Redis, so a tenant has one token budget, not one per sidecar; a tenant over
// it gets 429 budget.tokens with OpenAI's rate-limit headers while other tenants are served.
import t from "tap";
import { type Answer, defaultConfigWith, post, stackFor } from "../helpers/e2e.js";
import { startRedis } from "../helpers/redis.js";

const TOKENS_PER_MINUTE = 600;

t.test("two sidecars, one budget per tenant", async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const defaults = await defaultConfigWith({});
  const routes = (defaults.routes as Record<string, unknown>[]).map((route) =>
    route.name === "chat" ? { ...route, budget: { enabled: true, tokensPerMinute: TOKENS_PER_MINUTE } } : route,
  );
  const guardConfig = { ...defaults, routes, budget: { redis: { url: redis.url, timeoutMs: 200 } } };
  const sidecars = [await stackFor(t, { guardConfig }), await stackFor(t, { guardConfig })];
  const ask = (sidecar: number, tenant: string, index: number): Promise<Answer> =>
    post(
      `${sidecars[sidecar % 2]?.url}/v1/chat/completions`,
      { model: "demo", max_tokens: 40, messages: [{ role: "user", content: `budget e2e ${tenant} ${index}` }] },
      { authorization: `Bearer ${tenant}` },
    );

  const remaining: number[] = [];
  let over: Answer | undefined;
  for (let index = 0; index < 40 && over === undefined; index++) {
    const answer = await ask(index, "alice", index);
    if (answer.status === 429) over = answer;
    else {
      t.equal(answer.status, 200);
      remaining.push(Number(answer.headers.get("x-ratelimit-remaining-tokens")));
    }
  }
  if (over === undefined) throw new Error("the tenant never ran out of tokens");
  t.ok(remaining.length >= 2, `${remaining.length} answers before the budget ran out`);
  t.same(
    remaining,
    [...remaining].sort((a, b) => b - a),
    `remaining tokens fall across both sidecars: ${remaining.join(", ")}`,
  );
  t.ok((remaining[0] ?? 0) < TOKENS_PER_MINUTE, "the first answer already counted its prompt");
  t.equal(over.headers.get("x-guard-reason"), "budget.tokens");
  t.equal(over.headers.get("x-ratelimit-limit-tokens"), String(TOKENS_PER_MINUTE));
  t.equal(over.headers.get("x-ratelimit-remaining-tokens"), "0");
  t.match(over.headers.get("x-ratelimit-reset-tokens"), /^(\d+ms|\d+s|\d+m\d+s)$/);
  t.match(over.headers.get("retry-after"), /^[1-9]\d*$/);
  t.match(JSON.parse(over.text), {
    error: { type: "rate_limit_error", code: "budget.tokens", limit: TOKENS_PER_MINUTE },
  });

  const other = await Promise.all([ask(0, "alice", 100), ask(1, "alice", 101)]);
  t.same(
    other.map((answer) => answer.headers.get("x-guard-reason")),
    ["budget.tokens", "budget.tokens"],
    "over on both sidecars: one budget, not two",
  );
  const bob = await Promise.all([ask(0, "bob", 0), ask(1, "bob", 1)]);
  t.same(
    bob.map((answer) => answer.status),
    [200, 200],
    "another tenant is served",
  );
});
