// Two sidecars' canary stages sharing one real redis-server or a real Redis Cluster (canary.redis,
// whose sync script's keys must hash to one slot there): the health rule judges
// their answers together, a quarantine one decides is adopted by the other at its next sync, a
// release on either releases both, and without Redis each decides alone.
import { pino } from "pino";
import { Registry } from "prom-client";
import t, { type Test } from "tap";
import { validateText } from "../../../../src/config/load.js";
import { configSchema } from "../../../../src/config/schema.js";
import { stageConfigs } from "../../../../src/pipeline/build.js";
import { type CanaryStage, createCanaryStage } from "../../../../src/pipeline/canary/stage.js";
import type { Outcome } from "../../../../src/pipeline/types.js";
import { chatExchange } from "../../../helpers/exchange.js";
import { sharedRedisKinds, startRedis } from "../../../helpers/redis.js";
import { registryValue } from "../../../helpers/registry-metrics.js";

const OK: Outcome = { answeredBy: "upstream", status: 200, cancelled: false };
const FAILED: Outcome = { answeredBy: "upstream", status: 503, cancelled: false };
// Syncs are made by the test, one at a time: the stage's own timer never fires.
const manualTimers = { set: () => undefined, clear: () => {} };

function sidecar(where: Record<string, unknown>, keyPrefix: string): { stage: CanaryStage; registry: Registry } {
  const config = configSchema.parse({
    // A loaded test machine can take longer than the default 30 ms, which would skip a sync.
    canary: { redis: { ...where, keyPrefix, timeoutMs: 1_000 } },
    routes: [
      {
        name: "sentiment",
        match: { pathPrefix: "/" },
        canary: { stable: "v1", candidates: [{ pool: "v2", weight: 1 }], sticky: "none" },
      },
    ],
  });
  const registry = new Registry();
  const stage = createCanaryStage(stageConfigs(config).canary, {
    registry,
    log: pino({ level: "silent" }),
    now: () => performance.now(),
    random: () => 0,
    timers: manualTimers,
  });
  return { stage, registry };
}

/** `count` answers of v2, every third of them an upstream 5xx. */
function answer(stage: CanaryStage, count: number): void {
  for (let i = 1; i <= count; i++) {
    const run = stage.start(chatExchange({ route: { name: "sentiment" } }));
    run?.onEnd?.(i % 3 === 0 ? FAILED : OK);
  }
}

const candidate = (stage: CanaryStage) => stage.status()[0]?.candidates[0];

for (const { name, start } of sharedRedisKinds)
  t.test(
    `the fleet's answers are judged together; a quarantine and a release reach every sidecar (${name})`,
    async (t) => {
      const redis = await start();
      t.teardown(() => redis.stop());
      await judgedTogether(t, redis.section);
    },
  );

async function judgedTogether(t: Test, where: Record<string, unknown>): Promise<void> {
  const a = sidecar(where, "test:merge:");
  const b = sidecar(where, "test:merge:");
  t.teardown(() => Promise.all([a.stage.close?.(), b.stage.close?.()]));
  await Promise.all([a.stage.warmUp?.(), b.stage.warmUp?.()]);

  answer(a.stage, 15);
  answer(b.stage, 15);
  t.equal(candidate(a.stage)?.quarantine, null, "15 answers are short of minRequests");
  await a.stage.sync();
  await b.stage.sync();
  t.match(candidate(b.stage), {
    window: { answers: 30, errors: 10 },
    ownWindow: { answers: 15, errors: 5 },
    share: 0.01,
    quarantine: { source: "local", reason: "errors", evidence: { answers: 30, errors: 10 } },
  });

  await a.stage.sync();
  t.match(candidate(a.stage), {
    share: 0.01,
    quarantine: { source: "fleet", reason: "errors", evidence: { answers: 30, errors: 10 } },
  });
  t.equal(await registryValue(a.registry, "guard_canary_quarantines_total", { pool: "v2", source: "fleet" }), 1);
  t.equal(await registryValue(b.registry, "guard_canary_quarantines_total", { pool: "v2", source: "local" }), 1);

  t.equal(a.stage.release("sentiment", "v2"), "released");
  await a.stage.sync();
  await b.stage.sync();
  t.match(candidate(b.stage), { share: 1, quarantine: null, window: { answers: 0 } }, "released on b too");
  await a.stage.sync();
  t.equal(candidate(a.stage)?.quarantine, null, "b's quarantine of the released generation is not re-adopted");

  answer(b.stage, 3);
  await b.stage.sync();
  await a.stage.sync();
  t.match(candidate(a.stage)?.window, { answers: 3 }, "the new generation counts afresh");
}

t.test("without Redis each sidecar decides alone, and the errors are counted", async (t) => {
  const redis = await startRedis();
  const a = sidecar({ url: redis.url }, "test:lost:");
  t.teardown(() => a.stage.close?.());
  await a.stage.warmUp?.();
  t.equal(await registryValue(a.registry, "guard_canary_redis_up", {}), 1);
  await redis.stop();
  // The client hears of the lost connection on its own, a moment later.
  for (
    let waited = 0;
    waited < 2_000 && (await registryValue(a.registry, "guard_canary_redis_up", {})) !== 0;
    waited += 20
  )
    await new Promise((resolve) => setTimeout(resolve, 20));
  await a.stage.sync();
  answer(a.stage, 30);
  t.match(candidate(a.stage)?.quarantine, { source: "local", reason: "errors" });
  t.equal(await registryValue(a.registry, "guard_canary_redis_up", {}), 0);
  t.ok(((await registryValue(a.registry, "guard_canary_redis_errors_total", { op: "connect" })) ?? 0) >= 1);
});

t.test("a sidecar's counts are published once under its name, however often it syncs", async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const a = sidecar({ url: redis.url }, "test:once:");
  const b = sidecar({ url: redis.url }, "test:once:");
  t.teardown(() => Promise.all([a.stage.close?.(), b.stage.close?.()]));
  await Promise.all([a.stage.warmUp?.(), b.stage.warmUp?.()]);
  answer(a.stage, 6);
  for (let i = 0; i < 3; i++) await a.stage.sync();
  await b.stage.sync();
  t.match(candidate(b.stage)?.window, { answers: 6, errors: 2 });
});

t.test("a sync interval past a second is refused, by its path", async (t) => {
  const { errors } = validateText("canary: { redis: { url: redis://127.0.0.1:6379, syncIntervalMs: 2000 } }\n");
  t.match(errors, [{ path: "canary.redis.syncIntervalMs" }]);
});
