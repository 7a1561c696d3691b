import t from "tap";
import { parseConfig } from "../../../../src/config/load.js";
import { configSchema } from "../../../../src/config/schema.js";

t.test("an empty config has a working, disabled cache", async (t) => {
  const config = configSchema.parse({ routes: [{ name: "chat" }] });
  t.equal(config.cache.maxBytes, 64 * 1024 * 1024);
  t.equal(config.cache.redis.url, undefined);
  t.equal(config.cache.redis.timeoutMs, 30);
  const route = config.routes[0]?.cache;
  t.equal(route?.enabled, false);
  t.same(route?.excludeFields, ["user", "metadata"]);
  const enabled = parseConfig("routes: [{ name: chat, cache: { enabled: true } }]");
  t.ok(enabled.ok, "an enabled cache on defaults passes every check");
  t.same(enabled.warnings, []);
});

t.test("unknown keys and bad values are reported with their path", async (t) => {
  const result = parseConfig(
    "routes:\n  - name: chat\n    cache: { enabled: true, ttlSecond: 5 }\ncache: { redis: { url: 'http://x' } }\n",
  );
  t.equal(result.ok, false);
  if (!result.ok) {
    t.ok(result.errors.some((error) => error.path === "routes[0].cache.ttlSecond"));
    t.ok(result.errors.some((error) => error.path === "cache.redis.url"));
  }
});

t.test("checks against the cache section and Envoy, with paths", async (t) => {
  const result = parseConfig(`
cache: { maxBytes: 4096, redis: { url: "redis://127.0.0.1:6379" } }
routes:
  - name: chat
    match: { pathPrefix: /chat }
    cache: { enabled: true, maxEntryBytes: 8192, singleFlightWaitMs: 40000 }
  - name: replay
    match: { pathPrefix: /replay }
    cache: { enabled: true, maxEntryBytes: 1024, allowHeaders: [content-type, age] }
  - name: off
    match: { pathPrefix: /off }
    cache: { maxEntryBytes: 8192, allowHeaders: [age] }
`);
  t.equal(result.ok, false);
  t.same(
    result.ok ? [] : result.errors.map((issue) => issue.path),
    ["routes[1].cache.allowHeaders[1]", "routes[0].cache.maxEntryBytes"],
    "disabled routes are not checked",
  );
  t.same(
    result.warnings.map((issue) => issue.path),
    ["routes[0].cache.singleFlightWaitMs"],
  );
});

t.test("a cache section no route uses is a warning", async (t) => {
  const result = parseConfig("cache: { redis: { url: 'redis://127.0.0.1:6379' } }\nroutes: [{ name: chat }]\n");
  t.ok(result.ok);
  t.same(result.warnings, [{ path: "cache", message: "no route enables the cache: this section has no effect" }]);
});

t.test("stream and stream_options can never be excluded from the key", async (t) => {
  const result = parseConfig(`
routes:
  - name: chat
    match: { pathPrefix: /chat }
    cache: { enabled: true, excludeFields: [user, stream, metadata, stream_options] }
  - name: off
    match: { pathPrefix: /off }
    cache: { excludeFields: [stream] }
`);
  t.equal(result.ok, false);
  if (result.ok) return;
  t.same(
    result.errors.map((issue) => issue.path),
    ["routes[0].cache.excludeFields[1]", "routes[0].cache.excludeFields[3]"],
    "each named by its path; disabled routes are not checked",
  );
  t.match(result.errors[0]?.message, /"stream" selects the form of the answer/);
});
