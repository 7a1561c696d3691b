import { Registry } from "prom-client";
import t from "tap";
import { type StoredResponse, storedSize } from "../../../../src/pipeline/cache/entry.js";
import { LocalTier } from "../../../../src/pipeline/cache/local-tier.js";
import { createCacheMetrics } from "../../../../src/pipeline/cache/metrics.js";
import { registryValue } from "../../../helpers/registry-metrics.js";
import { VirtualTime } from "../../../helpers/virtual-time.js";

const response = (bytes: number): StoredResponse => ({
  status: 200,
  headers: { "content-type": "application/json" },
  body: new Uint8Array(bytes),
});

t.test("bounded by bytes: least recently used entries are evicted", async (t) => {
  const time = new VirtualTime();
  const registry = new Registry();
  const entrySize = storedSize("k0", response(1_000));
  const tier = new LocalTier(entrySize * 3, time.now, createCacheMetrics(registry));
  for (const key of ["k0", "k1", "k2"]) tier.set("chat", key, response(1_000), 60_000);
  t.ok(tier.get("k0"), "touch k0 so k1 is the oldest");
  tier.set("chat", "k3", response(1_000), 60_000);
  t.equal(tier.get("k1"), undefined);
  t.ok(tier.get("k0") && tier.get("k2") && tier.get("k3"));
  t.ok(tier.bytes <= entrySize * 3);
  t.equal(await registryValue(registry, "guard_cache_evictions_total", { route: "chat", reason: "size" }), 1);
  t.equal(await registryValue(registry, "guard_cache_bytes", { route: "chat" }), tier.bytes);
});

t.test("an entry larger than the whole bound is not kept", async (t) => {
  const time = new VirtualTime();
  const registry = new Registry();
  const tier = new LocalTier(2_000, time.now, createCacheMetrics(registry));
  tier.set("chat", "big", response(5_000), 60_000);
  t.equal(tier.get("big"), undefined);
  t.equal(tier.bytes, 0);
  t.equal(await registryValue(registry, "guard_cache_bytes", { route: "chat" }), undefined, "no bytes ever accounted");
});

t.test("TTL and age follow the injected clock", async (t) => {
  const time = new VirtualTime();
  const registry = new Registry();
  const tier = new LocalTier(1_000_000, time.now, createCacheMetrics(registry));
  tier.set("chat", "k", response(10), 10_000);
  time.advance(4_500);
  t.equal(tier.get("k")?.ageMs, 4_500);
  time.advance(5_500);
  t.ok(tier.get("k"), "still fresh at exactly the TTL");
  time.advance(1);
  t.equal(tier.get("k"), undefined);
  t.equal(await registryValue(registry, "guard_cache_evictions_total", { route: "chat", reason: "expired" }), 1);
  t.equal(await registryValue(registry, "guard_cache_bytes", { route: "chat" }), 0);
});

t.test("an entry copied from elsewhere keeps its age", async (t) => {
  const time = new VirtualTime();
  const tier = new LocalTier(1_000_000, time.now, createCacheMetrics(new Registry()));
  tier.set("chat", "k", response(10), 5_000, 3_000);
  t.equal(tier.get("k")?.ageMs, 3_000);
});

t.test("a clock at 0 does not make entries immortal", async (t) => {
  let now = 0;
  const tier = new LocalTier(1_000_000, () => now, createCacheMetrics(new Registry()));
  tier.set("chat", "k", response(10), 1_000);
  now = 2_000;
  t.equal(tier.get("k"), undefined);
});

t.test("purge drops one route's entries and their bytes", async (t) => {
  const time = new VirtualTime();
  const registry = new Registry();
  const tier = new LocalTier(1_000_000, time.now, createCacheMetrics(registry));
  tier.set("chat", "a", response(10), 60_000);
  tier.set("chat", "b", response(10), 60_000);
  tier.set("embed", "c", response(10), 60_000);
  t.equal(tier.purgeRoute("chat"), 2);
  t.equal(tier.get("a"), undefined);
  t.ok(tier.get("c"));
  t.equal(await registryValue(registry, "guard_cache_bytes", { route: "chat" }), 0);
  t.equal(await registryValue(registry, "guard_cache_evictions_total", { route: "chat", reason: "purged" }), 2);
  t.equal(await registryValue(registry, "guard_cache_bytes", { route: "embed" }), tier.bytes);
});
