// Two sidecars' drift monitors sharing one real redis-server or a real Redis Cluster (drift.redis,
// whose profiles spread over the shards and are found on every master): each publishes its profiles
// and reads the other's, so both report the fleet's answers, merged per version.
import { pino } from "pino";
import { Registry } from "prom-client";
import t, { type Test } from "tap";
import { configSchema } from "../../../../src/config/schema.js";
import type { Payload } from "../../../../src/contracts/payload.js";
import { stageConfigs } from "../../../../src/pipeline/build.js";
import { createDriftMonitor, type DriftMonitor } from "../../../../src/pipeline/drift/monitor.js";
import { chatExchange } from "../../../helpers/exchange.js";
import { sharedRedisKinds, startRedis } from "../../../helpers/redis.js";
import { registrySum } from "../../../helpers/registry-metrics.js";
import { demoContract } from "../../contracts/fixtures.js";

function sidecar(
  where: Record<string, unknown>,
  relativeAccuracy = 0.02,
): { monitor: DriftMonitor; registry: Registry } {
  const config = configSchema.parse({
    // A loaded test machine can take longer than the default 30 ms, which would skip a sync.
    drift: {
      minSamples: 100,
      relativeAccuracy,
      redis: { ...where, keyPrefix: "test:drift:", syncIntervalMs: 60_000, timeoutMs: 1_000 },
    },
    routes: [
      {
        name: "sentiment",
        match: { pathPrefix: "/" },
        contract: { message: "demo.v1.Sentiment" },
        drift: { baselineVersion: "v1" },
      },
    ],
  });
  const registry = new Registry();
  const monitor = createDriftMonitor(stageConfigs(config).drift, {
    registry,
    log: pino({ level: "silent" }),
    now: () => performance.now(),
  });
  return { monitor, registry };
}

const exchange = chatExchange({ route: { name: "sentiment" } });
/** The payload of a contract bound to the whole body, as the check hands it on. */
const whole = (body: unknown): Payload[] => [{ path: "", value: body }];

for (const { name, start } of sharedRedisKinds)
  t.test(`each sidecar reports the fleet's answers, merged per version (${name})`, async (t) => {
    const redis = await start();
    t.teardown(() => redis.stop());
    await mergedPerVersion(t, redis.section);
  });

async function mergedPerVersion(t: Test, where: Record<string, unknown>): Promise<void> {
  const contract = await demoContract("sentiment");
  const a = sidecar(where);
  const b = sidecar(where);
  t.teardown(() => Promise.all([a.monitor.close?.(), b.monitor.close?.()]));
  await Promise.all([a.monitor.warmUp?.(), b.monitor.warmUp?.()]);
  const conforming = (i: number) => ({ label: "POSITIVE", score: 0.55 + (i % 45) / 100 });
  const collapsed = { label: "POSITIVE", score: 0.98 };
  for (let i = 0; i < 300; i++) a.monitor.observe(exchange, contract, "v1", whole(conforming(i)));
  for (let i = 0; i < 50; i++) a.monitor.observe(exchange, contract, "v2", whole(collapsed));
  for (let i = 0; i < 250; i++) b.monitor.observe(exchange, contract, "v2", whole(collapsed));
  t.equal(b.monitor.report()[0]?.versions[0]?.verdict, "insufficient_data", "alone, b has no baseline answers");

  await a.monitor.sync();
  await b.monitor.sync();
  await a.monitor.sync();
  for (const [name, side] of Object.entries({ a, b })) {
    const [route] = side.monitor.report();
    const samples = Object.fromEntries(route?.versions.map((version) => [version.version, version.samples]) ?? []);
    t.same(samples, { v1: 300, v2: 300 }, `${name} sees both sidecars' answers`);
    const v2 = route?.versions.find((version) => version.version === "v2");
    t.equal(v2?.verdict, "model_drift", `${name}: the fleet's v2 collapsed`);
    t.equal(v2?.fields[0]?.field, "score");
  }
  t.equal(a.monitor.profile("sentiment", "v2")?.samples, 50, "a's own profile keeps counting its own answers only");
  t.equal(await registrySum(a.registry, "guard_drift_redis_up"), 1);
}

t.test("profiles of a sidecar on another sketch accuracy are left out, not merged", async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const contract = await demoContract("sentiment");
  const a = sidecar({ url: redis.url });
  const b = sidecar({ url: redis.url }, 0.05);
  t.teardown(() => Promise.all([a.monitor.close?.(), b.monitor.close?.()]));
  await Promise.all([a.monitor.warmUp?.(), b.monitor.warmUp?.()]);
  for (let i = 0; i < 10; i++) a.monitor.observe(exchange, contract, "v1", whole({ label: "POSITIVE", score: 0.9 }));
  for (let i = 0; i < 10; i++) b.monitor.observe(exchange, contract, "v1", whole({ label: "POSITIVE", score: 0.9 }));
  await b.monitor.sync();
  await a.monitor.sync();
  t.equal(a.monitor.report()[0]?.versions[0]?.samples, 10, "b's sketches cannot merge with a's");
});

t.test("without Redis a sidecar reports its own answers, and says so", async (t) => {
  const redis = await startRedis();
  const a = sidecar({ url: redis.url });
  t.teardown(() => a.monitor.close?.());
  await a.monitor.warmUp?.();
  const contract = await demoContract("sentiment");
  for (let i = 0; i < 120; i++) a.monitor.observe(exchange, contract, "v1", whole({ label: "NEUTRAL", score: 0.5 }));
  await redis.stop();
  await a.monitor.sync();
  t.equal(a.monitor.report()[0]?.versions[0]?.samples, 120);
  // The lost connection is reported as ioredis notices it (seconds on a loaded machine).
  const reported = async (): Promise<boolean> =>
    (await registrySum(a.registry, "guard_drift_redis_up")) === 0 &&
    (await registrySum(a.registry, "guard_drift_redis_errors_total", { op: "connect" })) >= 1;
  const deadline = performance.now() + 20_000;
  while (!(await reported()) && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  t.equal(await registrySum(a.registry, "guard_drift_redis_up"), 0, "guard_drift_redis_up says so");
  t.ok((await registrySum(a.registry, "guard_drift_redis_errors_total", { op: "connect" })) >= 1);
});
