// Where a stage's shared Redis is: one server, a cluster or a sentinel-watched master, in one shape
// every stage's `redis` section takes, with errors named by their path.
import t from "tap";
import { validateText } from "../../../src/config/load.js";
import { configSchema } from "../../../src/config/schema.js";
import { describeTarget, endpointOf, redisTarget } from "../../../src/config-kit/redis.js";

const errorsOf = (text: string) => validateText(text).errors;

t.test("every stage's redis section takes a url, a cluster or a sentinel", async (t) => {
  const config = configSchema.parse({
    cache: { redis: { url: "redis://cache:6379" } },
    budget: { redis: { cluster: { nodes: ["redis://:secret@h1:7000", "redis://:secret@h2:7000"] } } },
    drift: { redis: { sentinel: { name: "mymaster", nodes: ["redis://s1:26379"], password: "pw" } } },
    canary: { redis: { cluster: { nodes: ["rediss://h1:7000"] }, syncIntervalMs: 200 } },
  });
  t.same(redisTarget(config.cache.redis), { kind: "single", url: "redis://cache:6379" });
  t.same(redisTarget(config.budget.redis), {
    kind: "cluster",
    nodes: ["redis://:secret@h1:7000", "redis://:secret@h2:7000"],
  });
  t.same(redisTarget(config.drift.redis), {
    kind: "sentinel",
    name: "mymaster",
    nodes: ["redis://s1:26379"],
    password: "pw",
  });
  t.match(config.canary.redis, { keyPrefix: "guard:canary:", syncIntervalMs: 200, timeoutMs: 30 });
  t.equal(redisTarget(configSchema.parse({}).cache.redis), undefined, "none: no shared tier");
});

t.test("a section names one target; node lists are reached one way", async (t) => {
  t.match(errorsOf("cache: { redis: { url: redis://a:6379, cluster: { nodes: [redis://b:7000] } } }\n"), [
    { path: "cache.redis.cluster", message: /url and cluster are alternatives/ },
  ]);
  t.match(
    errorsOf(
      "budget: { redis: { cluster: { nodes: [redis://a:7000] }, sentinel: { name: m, nodes: [redis://s:26379] } } }\n",
    ),
    [{ path: "budget.redis.sentinel", message: /cluster and sentinel are alternatives/ }],
  );
  t.match(errorsOf("drift: { redis: { cluster: { nodes: [redis://a:7000, rediss://b:7000] } } }\n"), [
    { path: "drift.redis.cluster.nodes[1]", message: /same scheme/ },
  ]);
  t.match(errorsOf("canary: { redis: { cluster: { nodes: [redis://:x@a:7000, redis://:y@b:7000] } } }\n"), [
    { path: "canary.redis.cluster.nodes[1]", message: /same user and password/ },
  ]);
  t.match(errorsOf("cache: { redis: { sentinel: { nodes: [redis://s:26379] } } }\n"), [
    { path: "cache.redis.sentinel.name" },
  ]);
  t.match(errorsOf("cache: { redis: { cluster: { nodes: [] } } }\n"), [{ path: "cache.redis.cluster.nodes" }]);
  t.match(errorsOf("cache: { redis: { cluster: { nodes: [http://a:7000] } } }\n"), [
    { path: "cache.redis.cluster.nodes[0]", message: /redis:\/\// },
  ]);
  t.match(errorsOf("cache: { redis: { cluster: { seeds: [redis://a:7000] } } }\n"), [
    { path: "cache.redis.cluster.nodes" },
    { path: "cache.redis.cluster.seeds", message: "unknown key" },
  ]);
});

t.test("node URLs become the socket addresses and credentials ioredis takes", async (t) => {
  t.same(endpointOf("redis://h1:7000"), { host: "h1", port: 7000, tls: false });
  t.same(endpointOf("rediss://[::1]"), { host: "::1", port: 6379, tls: true });
  t.same(endpointOf("redis://us%40r:p%3Ass@h"), {
    host: "h",
    port: 6379,
    tls: false,
    username: "us@r",
    password: "p:ss",
  });
});

t.test("logs name hosts and ports, never a password", async (t) => {
  t.equal(describeTarget({ kind: "single", url: "redis://:secret@a:6379/0" }), "redis://a:6379");
  t.equal(
    describeTarget({ kind: "cluster", nodes: ["redis://:secret@h1:7000", "redis://:secret@h2:7001"] }),
    "cluster redis://h1:7000,redis://h2:7001",
  );
  t.equal(
    describeTarget({ kind: "sentinel", name: "m", nodes: ["redis://:s@s1:26379"], password: "pw" }),
    "sentinel m@redis://s1:26379",
  );
});
