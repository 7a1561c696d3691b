// In-process cost of the cache stage's hit path (key + local lookup + reply), and of a
// lookup answered by a loopback Redis. Envoy round trips are not included (see the e2e bench).
// Run: npx tsc -p . && node dist/bench/cache-hit.js
import { performance } from "node:perf_hooks";
import { pino } from "pino";
import { Registry } from "prom-client";
import { configSchema } from "../src/config/schema.js";
import { stageConfigs } from "../src/pipeline/build.js";
import { createCacheStage } from "../src/pipeline/cache/stage.js";
import type { Exchange } from "../src/pipeline/types.js";
import { startRedis } from "../test/helpers/redis.js";

const ITERATIONS = 20_000;
const body = Buffer.from(
  JSON.stringify({ model: "m", temperature: 0, messages: [{ role: "user", content: "x".repeat(1_000) }], user: "u-1" }),
);
const answer = Buffer.from(JSON.stringify({ choices: [{ message: { content: "y".repeat(2_000) } }] }));

function exchange(): Exchange {
  return {
    request: {
      method: "POST",
      path: "/v1/chat/completions",
      authority: "model",
      headers: new Map([
        ["authorization", "Bearer k"],
        ["content-type", "application/json"],
      ]),
      requestId: "r",
      endOfStream: false,
    },
    route: { name: "chat" },
    startedAt: 0,
    tenant: "anonymous",
    priority: "standard",
    extendDeadline: () => {},
  };
}

async function measure(label: string, redisUrl: string | undefined, evictLocal: boolean): Promise<void> {
  const config = configSchema.parse({
    cache: {
      ...(redisUrl === undefined ? {} : { redis: { url: redisUrl } }),
      maxBytes: evictLocal ? 1024 : 64 * 1024 * 1024,
    },
    routes: [{ name: "chat", cache: { enabled: true, maxEntryBytes: 1024 } }],
  });
  const registry = new Registry();
  const stage = createCacheStage(stageConfigs(config).cache, {
    registry,
    log: pino({ level: "silent" }),
    now: () => performance.now(),
  });
  await stage.warmUp();
  const first = exchange();
  const leader = stage.start(first)!;
  await leader.onRequestBody!(body);
  first.response = { status: 200, headers: new Map([["content-type", "application/json"]]), endOfStream: false };
  await leader.onResponseHeaders!(first.response);
  // Too big for the local tier when evictLocal: every later lookup goes to Redis.
  await leader.onResponseBody!(answer.subarray(0, 900));
  leader.onEnd!({ answeredBy: "upstream", cancelled: false });
  await new Promise((resolve) => setTimeout(resolve, 50));
  const samples: number[] = [];
  let hits = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const run = stage.start(exchange())!;
    const started = performance.now();
    const step = await run.onRequestBody!(body);
    // Only hits: a lookup skipped while Redis is marked down would flatter the Redis numbers.
    if (step.type === "reply") {
      samples.push(performance.now() - started);
      hits++;
    }
    run.onEnd!({ answeredBy: "guard", cancelled: false });
  }
  samples.sort((a, b) => a - b);
  const at = (q: number) => (samples[Math.floor(q * (samples.length - 1))] ?? NaN).toFixed(3);
  const redisErrors =
    (await registry.getSingleMetric("guard_cache_redis_errors_total")?.get())?.values.reduce(
      (sum, value) => sum + value.value,
      0,
    ) ?? 0;
  console.log(
    `${label}: ${ITERATIONS} lookups, ${hits} hits, ${redisErrors} Redis errors, hit p50 ${at(0.5)} ms, p99 ${at(0.99)} ms`,
  );
  await stage.close();
}

await measure("local hit (1 KB prompt, 0.9 KB answer)", undefined, false);
const redis = await startRedis();
try {
  await measure("redis hit, local tier too small to keep it", redis.url, true);
} finally {
  await redis.stop();
}
