// The shared Redis connection for each kind of target: the client it builds (and the guarantees
// every one keeps: no offline queue, no retries of a command), and, against real servers (a
// master, replica and sentinel; a three-master cluster), a failover followed with every call
// answered (by Redis or by undefined) meanwhile.
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import { pino } from "pino";
import t from "tap";
import type { RedisTarget } from "../../../src/config-kit/redis.js";
import { waitUntil } from "../../../src/devstack/process.js";
import { createClient, type SharedClient, SharedRedis } from "../../../src/pipeline/shared-redis.js";
import { redisCli, startRedisCluster, startSentinelGroup } from "../../helpers/redis.js";

const require = createRequire(import.meta.url);
const { Cluster, Redis } = require("ioredis") as typeof import("ioredis");

/** A client to nothing (port 1): only its construction is under test. */
function unconnected(target: RedisTarget): SharedClient {
  const client = createClient({ target, timeoutMs: 50, probeIntervalMs: 100 });
  client.on("error", () => {});
  client.on("node error", () => {});
  client.disconnect();
  return client;
}

t.test("a cluster target gets ioredis' Cluster, one user and TLS for every node", async (t) => {
  const client = unconnected({ kind: "cluster", nodes: ["rediss://:pw@127.0.0.1:1", "rediss://:pw@127.0.0.1:2"] });
  t.ok(client instanceof Cluster);
  if (!(client instanceof Cluster)) return;
  t.match(client.options, {
    enableOfflineQueue: false,
    redisOptions: { password: "pw", tls: {}, maxRetriesPerRequest: 0, commandTimeout: 50, protocol: 2 },
  });
  t.equal(client.options.clusterNodeRetryStrategy, null, "a lost node is not redialled: the slot map says where to go");
});

t.test("a sentinel target gets a Redis that asks the sentinels for the master", async (t) => {
  const client = unconnected({
    kind: "sentinel",
    name: "mymaster",
    nodes: ["redis://:sentinel-pw@127.0.0.1:1", "redis://127.0.0.1:2"],
    password: "master-pw",
  });
  t.ok(client instanceof Redis);
  if (!(client instanceof Redis)) return;
  t.notOk(client.options.failoverDetector, "ioredis' failover detector can end the client for good");
  t.equal(client.options.reconnectOnError?.(new Error("READONLY You can't write against a read only replica.")), 1);
  t.equal(client.options.reconnectOnError?.(new Error("ERR wrong number of arguments")), false);
  t.match(client.options, {
    name: "mymaster",
    sentinels: [
      { host: "127.0.0.1", port: 1 },
      { host: "127.0.0.1", port: 2 },
    ],
    sentinelPassword: "sentinel-pw",
    password: "master-pw",
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
  });
});

// Generous: on a loaded test machine a call past a short timeout would fail the tier, which is not
// what these cases are about. Calls are still bounded by it, which they check.
const TIMEOUT_MS = 1_000;

/** A connection as a stage has one, recording its health transitions. */
function connection(target: RedisTarget): { redis: SharedRedis<"set">; health: boolean[] } {
  const health: boolean[] = [];
  const redis = new SharedRedis<"set">(
    { target, timeoutMs: TIMEOUT_MS, probeIntervalMs: 100 },
    {
      now: () => performance.now(),
      log: pino({ level: "silent" }),
      timers: { set: (run, ms) => setTimeout(run, ms), clear: (timer) => clearTimeout(timer as NodeJS.Timeout) },
      events: { failure: () => {}, health: (up) => health.push(up) },
      purpose: "test",
      fallback: "nothing shared",
    },
  );
  return { redis, health };
}

/** Writes `key` every 50 ms until one succeeds: how long that took, how many calls were skipped, the longest. */
async function writeUntilShared(redis: SharedRedis<"set">, key: string, value: string) {
  const from = performance.now();
  let skipped = 0;
  let longest = 0;
  let reply: string | undefined;
  while (performance.now() - from < 30_000) {
    const started = performance.now();
    reply = await redis.call("", "set", () => redis.client.set(key, value));
    longest = Math.max(longest, performance.now() - started);
    if (reply === "OK") break;
    skipped++;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { reply, skipped, longest: Math.round(longest), tookMs: Math.round(performance.now() - from) };
}

t.test("a sentinel's failover is followed; meanwhile calls answer undefined, within their timeout", async (t) => {
  const group = await startSentinelGroup(1, 1_000);
  t.teardown(() => group.stop());
  const { redis, health } = connection({ kind: "sentinel", name: group.name, nodes: group.sentinelUrls });
  t.teardown(() => redis.close());
  t.ok(await redis.connected(5_000), "connected through the sentinel");
  t.equal(await redis.call("", "set", () => redis.client.set("k", "before")), "OK");

  await group.master.stop();
  const { reply, skipped, longest, tookMs } = await writeUntilShared(redis, "k", "after");
  t.equal(reply, "OK", `writes resumed ${tookMs} ms after the master was killed`);
  t.ok(skipped > 0, `${skipped} calls answered undefined meanwhile`);
  t.ok(longest <= TIMEOUT_MS + 500, `no call waited past its timeout (longest ${longest} ms)`);
  t.equal(await group.masterPort(), group.replica.port, "the sentinel promoted the replica");
  t.equal((await redisCli(group.replica.port, "GET", "k")).trim(), "after", "the write went to the new master");
  t.same([health.at(0), health.includes(false), health.at(-1)], [true, true, true], "down, then up again");
});

t.test(
  "an operator's failover, the old master kept as a replica, is followed at its first refused write",
  async (t) => {
    const group = await startSentinelGroup(1, 1_000);
    t.teardown(() => group.stop());
    const { redis } = connection({ kind: "sentinel", name: group.name, nodes: group.sentinelUrls });
    t.teardown(() => redis.close());
    t.ok(await redis.connected(5_000), "connected through the sentinel");
    // The old master takes writes until the sentinel demotes it (asynchronous replication's window,
    // up to the sentinel's 10 s check of each server); then it refuses them (READONLY), which sends
    // the client back to the sentinels: hence a wait for a write on the new master, not one write.
    const askedAt = performance.now();
    await redisCli(group.sentinelPort, "SENTINEL", "FAILOVER", group.name);
    await waitUntil(
      "writes on the new master",
      async () =>
        (await redis.call("", "set", () => redis.client.set("k", "moved"))) === "OK" &&
        (await redisCli(group.replica.port, "GET", "k")).trim() === "moved",
      30_000,
    );
    t.pass(
      `writes reach the new master ${Math.round(performance.now() - askedAt)} ms after the failover was asked for`,
    );
  },
);

t.test("on a cluster a lost replica leaves the tier up; a lost master's failover is followed", async (t) => {
  const cluster = await startRedisCluster();
  t.teardown(() => cluster.stop());
  const { redis, health } = connection({ kind: "cluster", nodes: cluster.urls });
  t.teardown(() => redis.close());
  t.ok(await redis.connected(10_000), "connected to the cluster");
  const keys = Array.from({ length: 30 }, (_, i) => `key-${i}`);
  const writeAll = () => Promise.all(keys.map((key) => redis.call("", "set", () => redis.client.set(key, "v"))));
  t.same(
    await writeAll(),
    keys.map(() => "OK"),
    "keys on every shard written",
  );

  const view = await cluster.view();
  const replica = view.find((node) => node.role === "replica");
  if (replica === undefined) throw new Error("no replica");
  // As a slot refresh that asked the lost replica first would report it: not a failure of the tier.
  redis.client.emit("node error", new Error("connect ECONNREFUSED"), `127.0.0.1:${replica.port}`);
  t.notOk(health.includes(false), "a replica's node error leaves the tier up");
  await cluster.kill(replica.port);
  // Past the node timeout (2 s) and a slot refresh (every 5 s): the time the lost replica is noticed.
  const until = performance.now() + 6_000;
  const replies: (string | undefined)[] = [];
  while (performance.now() < until) {
    replies.push(...(await writeAll()));
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.same(
    replies.filter((reply) => reply !== "OK"),
    [],
    `${replies.length} writes while a replica was lost: none skipped`,
  );
  t.notOk(health.includes(false), "the tier never went down");

  // Another shard's master: the replica that would replace it is alive.
  const master = view.find((node) => node.role === "master" && node.id !== replica.masterId);
  if (master === undefined) throw new Error("no master");
  t.equal(redis.masters().length, 3, "three masters to SCAN");
  await cluster.kill(master.port);
  const walkFails = async () => {
    try {
      redis.masters();
      return false;
    } catch {
      return true;
    }
  };
  await waitUntil("the lost master to leave the client", walkFails, 5_000);
  t.pass("a walk of every master's keys fails while the lost master's slots have not moved");
  // A key of every shard, so that the one on the lost master's slots must be written too.
  const written = await Promise.all(keys.map((key) => writeUntilShared(redis, key, "after")));
  t.same(
    written.map(({ reply }) => reply),
    keys.map(() => "OK"),
    `every key written again, the last ${Math.max(...written.map(({ tookMs }) => tookMs))} ms after the master was killed`,
  );
  t.ok(Math.max(...written.map(({ longest }) => longest)) <= TIMEOUT_MS + 500, "no call waited past its timeout");
  t.same([health.includes(false), health.at(-1)], [true, true], "down, then up again");
  await waitUntil("the slot map to name the promoted master", async () => !(await walkFails()), 10_000);
  t.equal(redis.masters().length, 3, "three masters to SCAN again, the promoted replica among them");
});
