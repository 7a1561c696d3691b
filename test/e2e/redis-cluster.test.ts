// The shared cache tier on a real Redis Cluster (three masters, a replica each, on loopback) behind
// two guards, each with its own real Envoy: entries spread over the shards, a hit stored through
// one sidecar is served by the other, a master SIGKILLed under load costs no request (the local
// tier answers meanwhile), and once its replica has taken over, sharing covers every slot again.
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import t from "tap";
import { waitUntil } from "../../src/devstack/process.js";
import type { Stack } from "../../src/devstack/stack.js";
import { defaultConfigWith, post, stackFor, upstreamServed } from "../helpers/e2e.js";
import { startRedisCluster } from "../helpers/redis.js";

const CHAT_PATH = "/v1/chat/completions";
const ENTRIES = "guard:cache:e:*";
const tenant = { authorization: "Bearer cluster-tenant" };

function chat(tag: string): Record<string, unknown> {
  return { model: "demo", temperature: 0, messages: [{ role: "user", content: `cluster e2e: ${tag}` }] };
}

t.test("two sidecars share a Redis Cluster and follow its failover", async (t) => {
  const cluster = await startRedisCluster();
  t.teardown(() => cluster.stop());
  const config = await defaultConfigWith({
    cache: {
      maxBytes: 67_108_864,
      // A loaded test machine can take longer than the default 30 ms for a call.
      redis: { cluster: { nodes: cluster.urls }, timeoutMs: 200, probeIntervalMs: 200 },
    },
  });
  const [first, second] = await Promise.all([
    stackFor(t, { guardConfig: config }),
    stackFor(t, { guardConfig: config }),
  ]);
  for (const stack of [first, second])
    t.equal((await post(`${stack.url}${CHAT_PATH}`, chat("warm-up"), tenant)).headers.get("x-model-version"), "v1");

  /** Stores each tag through the first sidecar, then asks the second: the tier each answer came from. */
  async function sharedTiers(tags: readonly string[]): Promise<{ tiers: (string | null)[]; served: number }> {
    for (const tag of tags) t.equal((await post(`${first.url}${CHAT_PATH}`, chat(tag), tenant)).status, 200);
    // The Redis write is fire and forget: give it a moment before asking the other sidecar.
    await sleep(100);
    const before = await upstreamServed(second.light.url);
    const tiers: (string | null)[] = [];
    for (const tag of tags)
      tiers.push((await post(`${second.url}${CHAT_PATH}`, chat(tag), tenant)).headers.get("x-guard-cache-tier"));
    return { tiers, served: (await upstreamServed(second.light.url)) - before };
  }
  const masters = async () =>
    (await cluster.view()).filter((node) => node.role === "master" && !node.failed && node.slots > 0);
  const entriesPerMaster = async () =>
    Promise.all((await masters()).map(async (node) => [node.port, await cluster.keysOn(node.port, ENTRIES)] as const));

  // 30 entries: the chance that a shard of three gets none by its hash alone is 3 × (2/3)^30 ≈ 2e-5.
  const spread = Array.from({ length: 30 }, (_, i) => `spread-${i}`);
  const before = await sharedTiers(spread);
  t.same(
    before,
    { tiers: spread.map(() => "redis"), served: 0 },
    "every entry stored by one sidecar is a hit on the other",
  );
  const counts = await entriesPerMaster();
  t.equal(counts.length, 3, "three masters");
  t.ok(
    counts.every(([, count]) => count > 0),
    `entries spread over the shards: ${counts.map(([port, count]) => `${port}: ${count}`).join(", ")}`,
  );
  t.equal(
    counts.reduce((sum, [, count]) => sum + count, 0),
    spread.length + 1,
    "one entry per request body (and the warm-up's)",
  );

  // A master dies under traffic on both sidecars: nothing may fail while its replica takes over.
  const [victim] = counts;
  if (victim === undefined) throw new Error("no master");
  let stop = false;
  const statuses: number[] = [];
  const load = (async () => {
    let i = 0;
    while (!stop) {
      const tag = `load-${i++ % 11}`;
      const answers = await Promise.all(
        [first, second].map((stack: Stack) => post(`${stack.url}${CHAT_PATH}`, chat(tag), tenant)),
      );
      statuses.push(...answers.map((answer) => answer.status));
    }
  })();
  await sleep(300);
  const killedAt = performance.now();
  await cluster.kill(victim[0]);
  let promoted: number | undefined;
  await waitUntil(
    "a replica to take over the killed master's slots",
    async () => {
      const now = await masters();
      promoted = now.find((node) => !counts.some(([port]) => port === node.port))?.port;
      return now.length === 3 && promoted !== undefined;
    },
    30_000,
  );
  const failoverMs = Math.round(performance.now() - killedAt);
  await sleep(300);
  stop = true;
  await load;
  t.ok(statuses.length > 10, `${statuses.length} requests while the master was down and replaced`);
  t.same(
    statuses.filter((status) => status !== 200),
    [],
    "no request lost while a master was down",
  );
  t.match(
    await first.guard?.metrics(),
    /guard_cache_redis_errors_total\{[^}]*\} [1-9]/,
    `the loss was noticed (failover after ${failoverMs} ms)`,
  );

  // Sharing resumes on every slot, the promoted replica's included: both sidecars' clients follow
  // the new slot map (a MOVED or a refresh), and their back-off ends at the next successful probe.
  const promotedPort = promoted as number;
  const onPromotedBefore = await cluster.keysOn(promotedPort, ENTRIES);
  let attempt = 0;
  let after: { tiers: (string | null)[]; served: number } = { tiers: [], served: -1 };
  const resumedAt = performance.now();
  await waitUntil(
    "sharing on every shard after the failover",
    async () => {
      const tags = Array.from({ length: 12 }, (_, i) => `after-${attempt}-${i}`);
      attempt++;
      after = await sharedTiers(tags);
      return after.tiers.every((tier) => tier === "redis");
    },
    20_000,
  );
  t.same(after.served, 0, "the second sidecar's upstream saw none of them");
  t.ok(
    (await cluster.keysOn(promotedPort, ENTRIES)) > onPromotedBefore,
    `the promoted replica (${promotedPort}) stores new entries; shared again ${Math.round(performance.now() - resumedAt)} ms after the failover was seen`,
  );
  for (const stack of [first, second]) t.match(await stack.guard?.metrics(), /guard_cache_redis_up 1/);
});
