import t from "tap";
import { parseConfig } from "../../../../src/config/load.js";
import { configSchema } from "../../../../src/config/schema.js";
import { cacheConfigErrors, cacheConfigWarnings } from "../../../../src/pipeline/cache/config.js";

t.test("an empty config has a working, disabled cache", async (t) => {
  const config = configSchema.parse({ routes: [{ name: "chat" }] });
  t.equal(config.cache.maxBytes, 64 * 1024 * 1024);
  t.equal(config.cache.redis.url, undefined);
  t.equal(config.cache.redis.timeoutMs, 30);
  const route = config.routes[0]?.cache;
  t.equal(route?.enabled, false);
  t.equal(route?.tenantHeader, "authorization");
  t.same(route?.excludeFields, ["user", "metadata"]);
  t.same(cacheConfigErrors(config), []);
  t.same(cacheConfigWarnings(config), []);
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

t.test("cross-checks", async (t) => {
  const config = configSchema.parse({
    cache: { maxBytes: 4096, redis: { url: "redis://127.0.0.1:6379" } },
    routes: [
      {
        name: "chat",
        cache: {
          enabled: true,
          maxEntryBytes: 8192,
          allowHeaders: ["content-type", "age"],
          singleFlightWaitMs: 40_000,
        },
      },
      { name: "off", cache: { maxEntryBytes: 8192 } },
    ],
  });
  t.same(
    cacheConfigErrors(config).map((issue) => issue.path),
    ["routes[0].cache.maxEntryBytes", "routes[0].cache.allowHeaders[1]"],
  );
  t.same(
    cacheConfigWarnings(config).map((issue) => issue.path),
    ["routes[0].cache.singleFlightWaitMs"],
  );
  const unused = configSchema.parse({
    cache: { redis: { url: "redis://127.0.0.1:6379" } },
    routes: [{ name: "chat" }],
  });
  t.same(
    cacheConfigWarnings(unused).map((issue) => issue.path),
    ["cache.redis.url"],
  );
});
