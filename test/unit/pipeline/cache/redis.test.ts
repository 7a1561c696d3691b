// The shared tier against a real redis-server: two guards (two cache stages, as two sidecars
// would have) share entries and epochs through it, and survive it dying and coming back.
import { performance } from "node:perf_hooks";
import { Redis } from "ioredis";
import { pino } from "pino";
import { Registry } from "prom-client";
import t from "tap";
import { configSchema } from "../../../../src/config/schema.js";
import { stageConfigs } from "../../../../src/pipeline/build.js";
import { decodeEntry, encodeEntry } from "../../../../src/pipeline/cache/entry.js";
import { type CacheStage, createCacheStage } from "../../../../src/pipeline/cache/stage.js";
import type { Step } from "../../../../src/pipeline/types.js";
import { startRedis } from "../../../helpers/redis.js";
import { registrySum } from "../../../helpers/registry-metrics.js";
import {
  fakeExchange,
  requestPhase,
  response,
  responsePhase,
  SSE_RESPONSE_HEADERS,
  sseEvents,
  streamPhase,
} from "./fakes.js";

const TIMEOUT_MS = 50;
const ANSWER = { choices: [{ message: { content: "shared" } }] };

interface Guard {
  readonly stage: CacheStage;
  readonly registry: Registry;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

function guard(url: string): Guard {
  const config = configSchema.parse({
    cache: { redis: { url, timeoutMs: TIMEOUT_MS, probeIntervalMs: 100, epochRefreshMs: 20, keyPrefix: "test:" } },
    routes: [{ name: "chat", cache: { enabled: true } }],
  });
  const registry = new Registry();
  const stage = createCacheStage(stageConfigs(config).cache, {
    registry,
    log: pino({ level: "silent" }),
    now: () => performance.now(),
  });
  return {
    stage,
    registry,
    metric: (name, labels = {}) => registrySum(registry, name, labels),
  };
}

const prompt = (content: string) => ({ temperature: 0, messages: [{ role: "user", content }] });

/** One exchange; the fake upstream answers 200 with the given model version. */
async function ask(g: Guard, content: string, version = "v1", tier?: string): Promise<{ step: Step }> {
  const exchange = fakeExchange({ body: prompt(content), ...(tier === undefined ? {} : { tier }) });
  const run = g.stage.start(exchange)!;
  const step = await requestPhase(run, exchange, prompt(content));
  if (step.type === "continue")
    await responsePhase(run, exchange, response(200, { "x-model-version": version }), ANSWER);
  run.onEnd?.({ answeredBy: step.type === "reply" ? "guard" : "upstream", cancelled: false });
  return { step };
}

/** Request phase only: where would this be answered from? Nothing is stored. */
async function peek(g: Guard, content: string, tier?: string): Promise<string> {
  const exchange = fakeExchange({ body: prompt(content), ...(tier === undefined ? {} : { tier }) });
  const run = g.stage.start(exchange)!;
  const step = await requestPhase(run, exchange, prompt(content));
  run.onEnd?.({ answeredBy: "unknown", cancelled: true });
  return tierOf(step);
}

const tierOf = (step: Step): string =>
  step.type === "reply" ? (step.reply.headers["x-guard-cache-tier"] ?? "") : "upstream";

/** Redis GETs actually made (calls skipped while Redis is down are not counted). */
const redisGets = (g: Guard): Promise<number> => g.metric("guard_cache_redis_call_seconds_count", { op: "get" });

async function eventually(what: string, check: () => Promise<boolean>, waitMs = 5_000): Promise<void> {
  const deadline = performance.now() + waitMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

t.test("two guards share hits, epochs and outages through one Redis", async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const a = guard(redis.url);
  const b = guard(redis.url);
  t.teardown(() => Promise.all([a.stage.close(), b.stage.close()]));
  await Promise.all([a.stage.warmUp(), b.stage.warmUp()]);

  await t.test("a response stored by one guard is a hit on the other", async (t) => {
    t.equal(tierOf((await ask(a, "one")).step), "upstream");
    // Stores are fire-and-forget; give Redis the moment it needs.
    await eventually("the entry to reach Redis", async () => (await peek(b, "one")) === "redis");
    const again = await ask(b, "one");
    t.equal(tierOf(again.step), "local", "copied into the local tier on the way");
    t.match(again.step.type === "reply" ? again.step.reply.headers : undefined, { age: /^\d+$/ }, "with its age");
    t.equal(await b.metric("guard_cache_hits_total", { tier: "redis" }), 1);
  });

  await t.test("a model version seen by one guard retires old entries on the other", async (t) => {
    t.equal(tierOf((await ask(b, "one")).step), "local");
    await ask(a, "two", "v2");
    await eventually("b to adopt v2", async () => (await peek(b, "one")) === "upstream");
    t.ok((await b.metric("guard_cache_epoch_changes_total", { cause: "shared" })) >= 1);
  });

  await t.test(
    "a pool's new version is shared per tier: the other guard retires that pool's entries only",
    async (t) => {
      // A tier's scope joins the shared tier once its values were read from Redis (at its first lookup).
      let round = 0;
      await eventually("both pools' scopes to be shared on both guards", async () => {
        round += 1;
        const content = `warm up ${round}`;
        await ask(a, content, "v2", "light");
        await ask(a, content, "v2", "heavy");
        return (await peek(b, content, "light")) !== "upstream" && (await peek(b, content, "heavy")) !== "upstream";
      });
      await ask(a, "light entry", "v2", "light");
      await ask(a, "heavy entry", "v2", "heavy");
      await eventually(
        "b to see both pools' entries",
        async () =>
          (await peek(b, "light entry", "light")) !== "upstream" &&
          (await peek(b, "heavy entry", "heavy")) !== "upstream",
      );
      await ask(a, "heavy other", "v3", "heavy");
      await eventually(
        "b to adopt v3 for the heavy pool",
        async () => (await peek(b, "heavy entry", "heavy")) === "upstream",
      );
      t.not(await peek(b, "light entry", "light"), "upstream", "the light pool's entry is still served");
    },
  );

  await t.test("an entry of another version is never served, even under the current key", async (t) => {
    const client = new Redis(redis.url);
    t.teardown(() => client.quit());
    const before = new Set(await client.keys("test:e:*"));
    await ask(a, "foreign", "v2");
    await eventually("b to see the entry", async () => (await peek(b, "foreign")) !== "upstream");
    // A foreign writer (another release, a bug) puts a v1 answer under the v2 key in Redis.
    const added = (await client.keys("test:e:*")).filter((key) => !before.has(key));
    t.equal(added.length, 1);
    for (const key of added) {
      const entry = decodeEntry((await client.getBuffer(key)) ?? Buffer.alloc(0));
      t.equal(entry?.response.modelVersion, "v2", "the entry records its version");
      if (entry === undefined) continue;
      await client.set(
        key,
        encodeEntry({ ...entry, response: { ...entry.response, modelVersion: "v1" } }),
        "PX",
        60_000,
      );
    }
    const c = guard(redis.url);
    t.teardown(() => c.stage.close());
    // A fresh sidecar: it reads the route's version (v2) at warm-up and has no local copy.
    await c.stage.warmUp();
    t.equal(await peek(c, "foreign"), "upstream", "the v1 answer is not served for v2");
    t.equal(await peek(c, "two"), "redis", "a v2 answer of the same route still is");
  });

  await t.test("a purge on one guard empties the route on both", async (t) => {
    await ask(a, "three", "v2");
    await eventually("b to see the entry", async () => (await peek(b, "three")) !== "upstream");
    const result = await a.stage.purgeRoute("chat");
    t.equal(result?.shared, true);
    t.equal(await peek(a, "three"), "upstream");
    await eventually("b to adopt the purge", async () => (await peek(b, "three")) === "upstream");
  });

  await t.test("Redis killed: requests keep flowing from the local tier, none waits on Redis", async (t) => {
    await ask(a, "four", "v2");
    t.equal(tierOf((await ask(a, "four", "v2")).step), "local");
    await redis.stop();
    await eventually("the outage to be visible", async () => (await b.metric("guard_cache_redis_up")) === 0);
    const lookups = await redisGets(b);
    const misses = await Promise.all(
      ["five", "six", "seven"].map(async (content) => tierOf((await ask(b, content, "v2")).step)),
    );
    t.same(misses, ["upstream", "upstream", "upstream"], "misses go upstream");
    t.equal(await redisGets(b), lookups, "without a call to the dead Redis: nothing waits on it");
    t.equal(tierOf((await ask(a, "four", "v2")).step), "local", "local hits unaffected");
    t.equal(tierOf((await ask(b, "five", "v2")).step), "local", "stored locally while Redis is down");
  });

  await t.test("Redis back: shared again", async (t) => {
    await redis.restart();
    await eventually(
      "both guards to reconnect",
      async () => (await a.metric("guard_cache_redis_up")) === 1 && (await b.metric("guard_cache_redis_up")) === 1,
    );
    await ask(a, "eight", "v2");
    await eventually("b to get a's new entry from Redis", async () => (await peek(b, "eight")) === "redis");
    t.pass("shared tier in use again");
  });

  await t.test("Redis hung: lookups give up after the timeout, then skip Redis while it is down", async (t) => {
    redis.pause();
    t.teardown(() => redis.resume());
    const lookups = await redisGets(b);
    const errors = await b.metric("guard_cache_redis_errors_total", { op: "get" });
    const first = await ask(b, "nine", "v2");
    t.equal(tierOf(first.step), "upstream", "the first lookup gave up and went upstream");
    t.equal(await redisGets(b), lookups + 1, "after one call to Redis");
    t.equal(await b.metric("guard_cache_redis_errors_total", { op: "get" }), errors + 1, "which failed (no reply)");
    t.equal(await b.metric("guard_cache_redis_up"), 0, "Redis now counts as down");
    const next = await ask(b, "ten", "v2");
    t.equal(tierOf(next.step), "upstream");
    t.equal(await redisGets(b), lookups + 1, "the next lookup skipped Redis: no call made");
    redis.resume();
    await eventually("the probe to find Redis again", async () => {
      await ask(b, "probe", "v2");
      return (await b.metric("guard_cache_redis_up")) === 1;
    });
  });
});

t.test("an entry of the other form under a stream's key is a miss, not an answer", async (t) => {
  // The key keeps the forms apart; this is the lookup's own check, against a shared tier that some
  // other writer (a bug, another version, an operator) filled with the wrong form.
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const raw = new Redis(redis.url);
  t.teardown(() => raw.quit());
  const a = guard(redis.url);
  t.teardown(() => a.stage.close());
  await a.stage.warmUp();
  const streamBody = { ...prompt("form"), stream: true };
  const entries = async () => (await raw.keys("test:e:*")).sort();

  const exchange = fakeExchange({ body: streamBody });
  const run = a.stage.start(exchange)!;
  t.equal((await requestPhase(run, exchange, streamBody)).type, "continue");
  await streamPhase(run, exchange, response(200, { ...SSE_RESPONSE_HEADERS, "x-model-version": "v1" }), [
    ...sseEvents(["sha", "red"]),
    "",
  ]);
  run.onEnd?.({ answeredBy: "upstream", cancelled: false, streamed: true });
  await eventually("the stream entry to reach Redis", async () => (await entries()).length === 1);
  const [streamKey] = await entries();
  await ask(a, "form");
  await eventually("the JSON entry to reach Redis", async () => (await entries()).length === 2);
  const jsonKey = (await entries()).find((key) => key !== streamKey)!;
  await raw.set(streamKey!, (await raw.getBuffer(jsonKey))!, "PX", 60_000);

  const b = guard(redis.url);
  t.teardown(() => b.stage.close());
  await b.stage.warmUp();
  t.equal(await peek(b, "form"), "redis", "the JSON entry answers the JSON request");
  const lookups = await redisGets(b);
  const streamed = fakeExchange({ body: streamBody });
  const streamRun = b.stage.start(streamed)!;
  t.equal((await requestPhase(streamRun, streamed, streamBody)).type, "continue", "but not the stream request");
  streamRun.onEnd?.({ answeredBy: "unknown", cancelled: true });
  t.equal(await redisGets(b), lookups + 1, "which did find it in Redis");
  t.equal(await b.metric("guard_cache_misses_total"), 1, "a miss");
});
