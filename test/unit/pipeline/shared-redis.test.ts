// The shared Redis connection for each kind of target: the client it builds (and the guarantees
// every one keeps: no offline queue, no retries of a command), and, against a real master, replica
// and sentinel, a failover followed with every call answered (by Redis or by undefined) meanwhile.
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import { pino } from "pino";
import t from "tap";
import type { RedisTarget } from "../../../src/config-kit/redis.js";
import { createClient, type SharedClient, SharedRedis } from "../../../src/pipeline/shared-redis.js";
import { redisCli, startSentinelGroup } from "../../helpers/redis.js";

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
  t.ok(client instanceof Redis && !(client instanceof Cluster));
  t.match(client.options, {
    name: "mymaster",
    sentinels: [
      { host: "127.0.0.1", port: 1 },
      { host: "127.0.0.1", port: 2 },
    ],
    sentinelPassword: "sentinel-pw",
    password: "master-pw",
    failoverDetector: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
  });
});

t.test("a sentinel's failover is followed; meanwhile calls answer undefined, never hang", async (t) => {
  const group = await startSentinelGroup(1, 1_000);
  t.teardown(() => group.stop());
  const health: boolean[] = [];
  const redis = new SharedRedis<"set">(
    { target: { kind: "sentinel", name: group.name, nodes: group.sentinelUrls }, timeoutMs: 200, probeIntervalMs: 100 },
    {
      now: () => performance.now(),
      log: pino({ level: "silent" }),
      timers: { set: (run, ms) => setTimeout(run, ms), clear: (timer) => clearTimeout(timer as NodeJS.Timeout) },
      events: { failure: () => {}, health: (up) => health.push(up) },
      purpose: "test",
      fallback: "nothing shared",
    },
  );
  t.teardown(() => redis.close());
  t.ok(await redis.connected(5_000), "connected through the sentinel");
  t.equal(await redis.call("", "set", () => redis.client.set("k", "before")), "OK");

  await group.master.stop();
  const killedAt = performance.now();
  let skipped = 0;
  let longest = 0;
  let reply: string | undefined;
  while (performance.now() - killedAt < 30_000) {
    const started = performance.now();
    reply = await redis.call("", "set", () => redis.client.set("k", "after"));
    longest = Math.max(longest, performance.now() - started);
    if (reply === "OK") break;
    skipped++;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const failoverMs = Math.round(performance.now() - killedAt);
  t.equal(reply, "OK", `writes resumed ${failoverMs} ms after the master was killed`);
  t.ok(skipped > 0, `${skipped} calls answered undefined meanwhile`);
  t.ok(longest < 1_000, `no call waited long (longest ${Math.round(longest)} ms)`);
  t.equal(await group.masterPort(), group.replica.port, "the sentinel promoted the replica");
  t.equal((await redisCli(group.replica.port, "GET", "k")).trim(), "after", "the write went to the new master");
  t.same([health.at(0), health.includes(false), health.at(-1)], [true, true, true], "down, then up again");
});
