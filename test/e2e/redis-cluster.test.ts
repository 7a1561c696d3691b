// The shared cache tier on a real Redis Cluster (three masters, a replica each) and on a real
// Sentinel-watched master (a replica, one sentinel), all on loopback, behind two guards, each with
// its own real Envoy: a hit stored through one sidecar is served by the other, cluster entries
// spread over the shards, a master SIGKILLed under load costs no request (the local tier answers
// meanwhile), and once its replica has been promoted, sharing covers every key again.
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import t, { type Test } from "tap";
import { waitUntil } from "../../src/devstack/process.js";
import type { Stack } from "../../src/devstack/stack.js";
import { defaultConfigWith, post, stackFor, upstreamServed } from "../helpers/e2e.js";
import { keyCount, startRedisCluster, startSentinelGroup } from "../helpers/redis.js";

const CHAT_PATH = "/v1/chat/completions";
const ENTRIES = "guard:cache:e:*";
const tenant = { authorization: "Bearer shared-redis-tenant" };

function chat(tag: string): Record<string, unknown> {
  return { model: "demo", temperature: 0, messages: [{ role: "user", content: `shared redis e2e: ${tag}` }] };
}

interface Sidecars {
  readonly first: Stack;
  readonly second: Stack;
}

/** Two guards sharing the cache through `redis` (a cache.redis section), both past their warm-up. */
async function sidecars(t: Test, redis: Record<string, unknown>): Promise<Sidecars> {
  // A loaded test machine can take longer than the default 30 ms for a call, which would fail the
  // tier for a probe interval: not what these cases are about.
  const config = await defaultConfigWith({
    cache: { maxBytes: 67_108_864, redis: { ...redis, timeoutMs: 1_000, probeIntervalMs: 200 } },
  });
  const [first, second] = await Promise.all([
    stackFor(t, { guardConfig: config }),
    stackFor(t, { guardConfig: config }),
  ]);
  // Each sidecar keys entries by the model version it has observed: both have seen v1 from here on.
  for (const stack of [first, second])
    t.equal((await post(`${stack.url}${CHAT_PATH}`, chat("warm-up"), tenant)).headers.get("x-model-version"), "v1");
  const pair = { first, second };
  // A route uses the shared tier once it has read the epochs there (within epochRefreshMs).
  let attempt = 0;
  await waitUntil(
    "a first hit shared between the sidecars",
    async () => (await sharedTiers(t, pair, [`first-${attempt++}`])).tiers[0] === "redis",
    15_000,
  );
  return pair;
}

interface Shared {
  /** The tier each of the second sidecar's answers came from. */
  readonly tiers: (string | null)[];
  /** Requests the second sidecar's upstream served meanwhile. */
  readonly served: number;
}

/** Stores each tag through the first sidecar, then asks the second for it. */
async function sharedTiers(t: Test, { first, second }: Sidecars, tags: readonly string[]): Promise<Shared> {
  for (const tag of tags) t.equal((await post(`${first.url}${CHAT_PATH}`, chat(tag), tenant)).status, 200);
  // The Redis write is fire and forget: give it a moment before asking the other sidecar.
  await sleep(100);
  const before = await upstreamServed(second.light.url);
  const tiers: (string | null)[] = [];
  for (const tag of tags)
    tiers.push((await post(`${second.url}${CHAT_PATH}`, chat(tag), tenant)).headers.get("x-guard-cache-tier"));
  return { tiers, served: (await upstreamServed(second.light.url)) - before };
}

/** Every status of the requests both sidecars answered while `during` ran (and 300 ms either side). */
async function statusesAround({ first, second }: Sidecars, during: () => Promise<void>): Promise<number[]> {
  let stop = false;
  const statuses: number[] = [];
  const load = (async () => {
    let i = 0;
    while (!stop) {
      const tag = `load-${i++ % 11}`;
      const answers = await Promise.all(
        [first, second].map((stack) => post(`${stack.url}${CHAT_PATH}`, chat(tag), tenant)),
      );
      statuses.push(...answers.map((answer) => answer.status));
    }
  })();
  await sleep(300);
  await during();
  await sleep(300);
  stop = true;
  await load;
  return statuses;
}

/** Fresh tags until every one of a batch is shared: how long that took after `from`, and the last batch. */
async function sharedAgain(t: Test, pair: Sidecars, from: number): Promise<{ afterMs: number; last: Shared }> {
  let attempt = 0;
  let last: Shared = { tiers: [], served: -1 };
  await waitUntil(
    "sharing on every shard after the failover",
    async () => {
      const tags = Array.from({ length: 12 }, (_, i) => `after-${attempt}-${i}`);
      attempt++;
      last = await sharedTiers(t, pair, tags);
      return last.tiers.every((tier) => tier === "redis");
    },
    20_000,
  );
  return { afterMs: Math.round(performance.now() - from), last };
}

async function checkFailoverOutcome(t: Test, pair: Sidecars, statuses: readonly number[], failoverMs: number) {
  t.ok(statuses.length > 10, `${statuses.length} requests while the master was down and replaced`);
  t.same(
    statuses.filter((status) => status !== 200),
    [],
    "no request lost while the master was down",
  );
  t.match(
    await pair.first.guard?.metrics(),
    /guard_cache_redis_errors_total\{[^}]*\} [1-9]/,
    `the loss was noticed (replica promoted ${failoverMs} ms after the kill)`,
  );
}

t.test("two sidecars share a Redis Cluster and follow its failover", async (t) => {
  const cluster = await startRedisCluster();
  t.teardown(() => cluster.stop());
  const pair = await sidecars(t, { cluster: { nodes: cluster.urls } });
  const masters = async () =>
    (await cluster.view()).filter((node) => node.role === "master" && !node.failed && node.slots > 0);
  const entries = async (nodes: readonly { port: number }[]) =>
    (await Promise.all(nodes.map((node) => keyCount(node.port, ENTRIES)))).reduce((sum, count) => sum + count, 0);

  // 30 entries: the chance that a shard of three gets none by its hash alone is 3 × (2/3)^30 ≈ 2e-5.
  const spread = Array.from({ length: 30 }, (_, i) => `spread-${i}`);
  const entriesBefore = await entries(await masters());
  t.same(
    await sharedTiers(t, pair, spread),
    { tiers: spread.map(() => "redis"), served: 0 },
    "every entry stored by one sidecar is a hit on the other",
  );
  const counts = await Promise.all(
    (await masters()).map(async (node) => [node.port, await keyCount(node.port, ENTRIES)] as const),
  );
  t.equal(counts.length, 3, "three masters");
  t.ok(
    counts.every(([, count]) => count > 0),
    `entries spread over the shards: ${counts.map(([port, count]) => `${port}: ${count}`).join(", ")}`,
  );
  t.equal(
    counts.reduce((sum, [, count]) => sum + count, 0) - entriesBefore,
    spread.length,
    "one entry per request body",
  );

  // A master dies under traffic on both sidecars: nothing may fail while its replica takes over.
  const [victim] = counts;
  if (victim === undefined) throw new Error("no master");
  let promoted = 0;
  let failoverMs = 0;
  const statuses = await statusesAround(pair, async () => {
    const killedAt = performance.now();
    await cluster.kill(victim[0]);
    await waitUntil(
      "a replica to take over the killed master's slots",
      async () => {
        const now = await masters();
        promoted = now.find((node) => !counts.some(([port]) => port === node.port))?.port ?? 0;
        return now.length === 3 && promoted !== 0;
      },
      30_000,
    );
    failoverMs = Math.round(performance.now() - killedAt);
  });
  await checkFailoverOutcome(t, pair, statuses, failoverMs);

  // Sharing resumes on every slot, the promoted replica's included: both sidecars' clients follow
  // the new slot map (a MOVED or a refresh), and their back-off ends at the next successful probe.
  const onPromotedBefore = await keyCount(promoted, ENTRIES);
  const { afterMs, last } = await sharedAgain(t, pair, performance.now());
  t.equal(last.served, 0, "the second sidecar's upstream saw none of them");
  t.ok(
    (await keyCount(promoted, ENTRIES)) > onPromotedBefore,
    `the promoted replica (${promoted}) stores new entries; all shared again ${afterMs} ms after it was seen promoted`,
  );
  for (const stack of [pair.first, pair.second]) t.match(await stack.guard?.metrics(), /guard_cache_redis_up 1/);
});

t.test("two sidecars share a Sentinel-watched master and follow its failover", async (t) => {
  const group = await startSentinelGroup(1, 1_000);
  t.teardown(() => group.stop());
  const pair = await sidecars(t, { sentinel: { name: group.name, nodes: group.sentinelUrls } });
  const tags = Array.from({ length: 5 }, (_, i) => `sentinel-${i}`);
  t.same(await sharedTiers(t, pair, tags), { tiers: tags.map(() => "redis"), served: 0 }, "hits shared");
  t.ok((await keyCount(group.master.port, ENTRIES)) >= tags.length, "stored on the master");

  let failoverMs = 0;
  const statuses = await statusesAround(pair, async () => {
    const killedAt = performance.now();
    await group.master.stop();
    await waitUntil(
      "the sentinel to promote the replica",
      async () => (await group.masterPort()) === group.replica.port,
      30_000,
    );
    failoverMs = Math.round(performance.now() - killedAt);
  });
  await checkFailoverOutcome(t, pair, statuses, failoverMs);

  const before = await keyCount(group.replica.port, ENTRIES);
  const { afterMs, last } = await sharedAgain(t, pair, performance.now());
  t.equal(last.served, 0, "the second sidecar's upstream saw none of them");
  t.ok(
    (await keyCount(group.replica.port, ENTRIES)) > before,
    `the promoted replica stores new entries; shared again ${afterMs} ms after the sentinel named it`,
  );
  for (const stack of [pair.first, pair.second]) t.match(await stack.guard?.metrics(), /guard_cache_redis_up 1/);
});
