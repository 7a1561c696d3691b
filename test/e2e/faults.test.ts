// The fault matrix through the real Envoy: the guard killed, restarted and stalled under load, the
// upstream failing in every way the demo model can, Redis going away, SIGTERM mid-flight. Each row
// asserts its outcome (docs/reliability.md lists them) and that no answer was corrupted: every 200
// from the model is checked against the request's checksum and the model's deterministic answer.
import { setTimeout as sleep } from "node:timers/promises";
import t, { type Test } from "tap";
import { metricSum } from "../../bench/metrics-text.js";
import { waitUntil } from "../../src/devstack/process.js";
import type { Stack } from "../../src/devstack/stack.js";
import { defaultConfigWith, stackFor } from "../helpers/e2e.js";
import {
  chatShot,
  countBy,
  ExpectedAnswers,
  mixedShot,
  type Result,
  type Shot,
  send,
  startLoad,
} from "../helpers/load.js";
import { startRedis } from "../helpers/redis.js";

const expected = new ExpectedAnswers();
t.teardown(() => expected.close());

/**
 * Client deadline of the requests: a request still open this long after Envoy's message_timeout (1 s
 * in the stack) is hung; the client then gives up and records "error", which the status checks reject.
 */
const NO_HANG_MS = 8_000;

function guardOf(stack: Stack): NonNullable<Stack["guard"]> {
  if (stack.guard === undefined) throw new Error("stack without a guard");
  return stack.guard;
}

async function intact(t: Test, results: readonly Result[], what: string): Promise<void> {
  const problems: string[] = [];
  for (const result of results) {
    if (result.status !== 200 || result.headers?.get("x-guard-cache") === "hit") continue;
    problems.push(...(await expected.check(result)));
  }
  t.same(problems.slice(0, 5), [], `${what}: every model answer intact (${results.length} checked)`);
}

async function guardedOk(stack: Stack): Promise<boolean> {
  const answer = await send(stack.url, chatShot(-1), 5_000);
  return answer.status === 200 && answer.headers?.get("x-guard-route") === "chat";
}

const statuses = (results: readonly Result[]): Record<string, number> =>
  countBy(results, (result) => String(result.status));

t.test("failure_mode_allow: true", async (t) => {
  const stack = await stackFor(t, { failureModeAllow: true });
  const guard = guardOf(stack);

  await t.test("guard stalled (SIGSTOP): message_timeout passes, the upstream serves unguarded", async (t) => {
    guard.process().child.kill("SIGSTOP");
    const results = await Promise.all([0, 1, 2, 3].map((index) => send(stack.url, chatShot(index), NO_HANG_MS)));
    guard.process().child.kill("SIGCONT");
    t.same(statuses(results), { 200: 4 }, "every request answered by the model, none hung");
    t.same(
      results.map((result) => result.headers?.get("x-guard-route") ?? null),
      [null, null, null, null],
      "unguarded while stalled",
    );
    await intact(t, results, "stalled");
    await waitUntil("guard serving after SIGCONT", () => guardedOk(stack), 10_000);
    t.equal(guard.process().exited(), false, "the guard survived the stall and the stale streams");
  });

  await t.test("guard killed under load: every request still served by the upstream", async (t) => {
    const load = startLoad(stack.url, (index) => chatShot(index), 4, NO_HANG_MS);
    await sleep(600);
    await guard.process().stop("SIGKILL");
    const killedAt = performance.now();
    await sleep(1_000);
    const results = await load.stop();
    t.same(statuses(results), { 200: results.length }, `${results.length} requests, all 200, none hung`);
    t.ok(
      results.some((result) => result.headers?.get("x-guard-route") === "chat"),
      "guarded before the kill",
    );
    const after = results.filter((result) => result.startedAt > killedAt);
    t.ok(
      after.length > 0 && after.every((result) => result.headers?.get("x-guard-route") == null),
      `${after.length} unguarded after the kill`,
    );
    await intact(t, results, "killed");
  });
});

t.test("failure_mode_allow: false", async (t) => {
  const stack = await stackFor(t, { failureModeAllow: false });
  const guard = guardOf(stack);

  await t.test("guard stalled (SIGSTOP): message_timeout passes, Envoy answers 504, nothing unguarded", async (t) => {
    const before = (await fetch(`${stack.light.url}/__demo/stats`).then((response) => response.json())) as {
      served: number;
    };
    guard.process().child.kill("SIGSTOP");
    const results = await Promise.all([0, 1, 2, 3].map((index) => send(stack.url, chatShot(100 + index), NO_HANG_MS)));
    guard.process().child.kill("SIGCONT");
    // A message timeout is a timeout to Envoy: 504, where an unreachable guard gives 500.
    t.same(statuses(results), { 504: 4 }, "Envoy's message_timeout answered each, none hung");
    const after = (await fetch(`${stack.light.url}/__demo/stats`).then((response) => response.json())) as {
      served: number;
    };
    t.equal(after.served, before.served, "none reached the model unguarded");
    await waitUntil("guard serving after SIGCONT", () => guardedOk(stack), 10_000);
    t.equal(guard.process().exited(), false);
  });

  await t.test(
    "guard killed and restarted under load: 500s while down, guarded again after the restart, no corrupted answer",
    async (t) => {
      const load = startLoad(stack.url, (index) => chatShot(1_000 + index), 4, NO_HANG_MS);
      await sleep(600);
      await guard.process().stop("SIGKILL");
      const killedAt = performance.now();
      await sleep(800);
      // The new guard takes streams as soon as its gRPC port is bound, a little before /readyz.
      const restartedAt = performance.now();
      await guard.restart();
      const readyAt = performance.now();
      const guardedAgain = (): Result | undefined =>
        load.results.find((result) => result.startedAt >= readyAt && result.headers?.get("x-guard-route") === "chat");
      await waitUntil("a guarded answer after the restart", async () => guardedAgain() !== undefined, 30_000);
      const recoveredAt = guardedAgain()?.endedAt ?? Infinity;
      await waitUntil(
        "more answers after recovery",
        async () => load.results.filter((result) => result.startedAt > recoveredAt).length >= 8,
        30_000,
      );
      const results = await load.stop();

      const guardReply = (result: Result): boolean => result.headers?.get("x-guard-reason") != null;
      t.same(
        results
          .filter((result) => result.status !== 200 && result.status !== 500 && !guardReply(result))
          .map((result) => `${result.status} ${result.error ?? ""}`),
        [],
        "every answer is a 200, Envoy's 500 or the guard's own reply (a restarted guard may shed)",
      );
      t.same(
        results.filter((result) => result.status === 200 && result.headers?.get("x-guard-route") == null).length,
        0,
        "no request served unguarded",
      );
      const down = results.filter((result) => result.startedAt > killedAt + 50 && result.endedAt < restartedAt);
      t.ok(down.length > 0, `${down.length} requests while the guard was down`);
      // 500 is Envoy's answer for an unreachable guard; waiting for the message_timeout would be a 504.
      t.same(statuses(down), { 500: down.length }, "all of them got the connection-failure status, not a timeout");
      const recoveryMs = recoveredAt - readyAt;
      const recovered = results.filter((result) => result.startedAt > recoveredAt);
      t.same(
        recovered.filter((result) => result.status !== 200 && !guardReply(result)).length,
        0,
        `${recovered.length} requests after recovery: ${JSON.stringify(statuses(recovered))}, none failed`,
      );
      await intact(t, results, "restart");
      t.comment(
        `fault=kill+restart statuses=${JSON.stringify(statuses(results))} recovery_ms=${recoveryMs.toFixed(0)}`,
      );
    },
  );
});

t.test("upstream 5xx storm, resets and slow answers: clean statuses, nothing hangs", async (t) => {
  const stack = await stackFor(t, { failureModeAllow: false });
  const shots: { shot: Shot; kind: string }[] = [];
  for (let index = 0; index < 12; index++)
    shots.push({ kind: "5xx", shot: chatShot(2_000 + index, { "x-demo-status": index % 2 === 0 ? "503" : "500" }) });
  for (let index = 0; index < 8; index++)
    shots.push({ kind: "reset", shot: mixedShot(2_100 + index, { "x-demo-reset": "1" }) });
  // The complexity stage sets the upstream timeout from the predicted latency (floor 1 s): a
  // 6 s answer is cut by Envoy's router long before the client gives up.
  for (let index = 0; index < 4; index++)
    shots.push({ kind: "slow", shot: chatShot(2_200 + index, { "x-demo-latency-ms": "6000" }) });
  // The client's deadline: a request still open after it is hung, and ends as a TimeoutError.
  const results = await Promise.all(shots.map(({ shot }) => send(stack.url, shot, 20_000)));
  const byKind = new Map<string, Result[]>();
  for (const [index, { kind }] of shots.entries())
    byKind.set(kind, [...(byKind.get(kind) ?? []), results[index] as Result]);

  const storm = byKind.get("5xx") ?? [];
  t.ok(
    storm.every((result) => result.status === 500 || result.status === 503),
    `5xx storm: ${JSON.stringify(statuses(storm))}`,
  );
  const resets = byKind.get("reset") ?? [];
  // Where the guard buffers the response (cache, contract) Envoy sees the reset first and answers
  // 502; where it streams, Envoy may already have sent the 200 headers and can only reset the
  // client's stream, which the client sees as an error. Either way the failure is visible.
  t.ok(
    resets.every((result) => result.status === "error" || (typeof result.status === "number" && result.status >= 500)),
    `resets become error statuses or visible stream errors, never a silently truncated 200: ${JSON.stringify(statuses(resets))}`,
  );
  const slow = byKind.get("slow") ?? [];
  // The model would answer these with a 200 after 6 s: a 504 means Envoy cut them at the guard's timeout.
  t.ok(
    slow.every((result) => result.status === 504 || result.status === 503),
    `slow answers time out: ${JSON.stringify(statuses(slow))}`,
  );
  t.same(
    results.filter((result) => /TimeoutError/.test(result.error ?? "")).map((result) => result.shot.path),
    [],
    "nothing hung until the client's deadline",
  );
  t.equal(guardOf(stack).process().exited(), false, "the guard is alive");
  const fresh = await send(stack.url, mixedShot(2_302), 10_000);
  t.equal(fresh.status, 200, "another route still serves");
  await intact(t, [fresh], "after the storm");
  t.comment(
    `fault=upstream ${JSON.stringify(Object.fromEntries([...byKind].map(([kind, list]) => [kind, statuses(list)])))}`,
  );
});

t.test("Redis stopped and restarted under cached load: no request fails, Redis serves hits again", async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const base = await defaultConfigWith({});
  // The smallest in-process tier (1 KiB) holds one to three of the demo's short answers: with
  // twelve requests in rotation nearly every hit has to come from Redis, so hits show Redis served.
  const MIN_LOCAL_BYTES = 1024;
  const routes = (base.routes as Record<string, unknown>[]).map((route) =>
    route.cache === undefined
      ? route
      : { ...route, cache: { ...(route.cache as object), maxEntryBytes: MIN_LOCAL_BYTES } },
  );
  const stack = await stackFor(t, {
    failureModeAllow: false,
    guardConfig: {
      ...base,
      routes,
      cache: { ...(base.cache as object), maxBytes: MIN_LOCAL_BYTES, redis: { url: redis.url } },
    },
  });
  const guard = guardOf(stack);
  const redisHits = async (): Promise<number> =>
    metricSum(await guard.metrics(), "guard_cache_hits_total", { tier: "redis" });
  const servedByRedis = (result: Result): boolean =>
    result.headers?.get("x-guard-cache") === "hit" && result.headers.get("x-guard-cache-tier") === "redis";
  const redisHitsStartedAfter = (moment: number): number =>
    load.results.filter((result) => result.startedAt > moment && servedByRedis(result)).length;

  const load = startLoad(stack.url, (index) => mixedShot(3_000 + (index % 12), { "x-guard-cache": "allow" }), 3);
  await waitUntil("hits from Redis", async () => redisHitsStartedAfter(0) >= 5, 30_000);
  const hitsBeforeStop = await redisHits();
  await redis.stop();
  const stoppedAt = performance.now();
  await waitUntil(
    "a rotation of requests while Redis is down",
    async () => load.results.filter((result) => result.startedAt > stoppedAt).length >= 24,
    30_000,
  );
  const hitsWhileDown = await redisHits();
  await redis.restart();
  const restartedAt = performance.now();
  await waitUntil("hits from the restarted Redis", async () => redisHitsStartedAfter(restartedAt) >= 5, 30_000);
  const results = await load.stop();

  t.same(statuses(results), { 200: results.length }, `${results.length} requests, all 200`);
  t.ok(hitsBeforeStop >= 5, `Redis served ${hitsBeforeStop} hits before the stop (guard_cache_hits_total)`);
  t.same(
    results.filter((result) => result.startedAt > stoppedAt && result.endedAt < restartedAt && servedByRedis(result)),
    [],
    "no Redis hit while it was down",
  );
  t.ok(
    (await redisHits()) >= hitsWhileDown + 5,
    `the restarted Redis served hits again (${hitsWhileDown} before the restart, ${await redisHits()} after)`,
  );
  t.comment(
    `cache states: ${JSON.stringify(countBy(results, (result) => result.headers?.get("x-guard-cache-tier") ?? "none"))}`,
  );
  await intact(t, results, "redis");
});

t.test("SIGTERM with requests in flight on every route: all complete, guarded, intact", async (t) => {
  const stack = await stackFor(t, { failureModeAllow: false });
  const guard = guardOf(stack);
  // 800 ms: within the 1 s upstream timeout floor the complexity stage sets for small requests.
  const shots = Array.from({ length: 8 }, (_, index) => mixedShot(4_000 + index, { "x-demo-latency-ms": "800" }));
  const inFlight = Promise.all(shots.map((shot) => send(stack.url, shot, 20_000)));
  await sleep(300);
  const exitCode = guard.process().stop("SIGTERM", 15_000);
  const results = await inFlight;
  t.same(statuses(results), { 200: 8 });
  t.ok(
    results.every((result) => result.headers?.get("x-guard-route") !== null),
    "response phase processed by the draining guard",
  );
  await intact(t, results, "drain");
  t.equal(await exitCode, 0, "clean exit after the drain");
});
