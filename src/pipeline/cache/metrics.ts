// guard_cache_* metrics. Every label is bounded: route names come from the config, tiers,
// reasons and operations from fixed vocabularies in this folder.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export type HitTier = "local" | "redis";
/** stream_not_coalesced: a stream request found an identical one in flight and went upstream anyway. */
export type CoalesceOutcome = "served" | "leader_failed" | "timeout" | "stream_not_coalesced";
export type EvictionReason = "size" | "expired" | "purged";
export type RedisOp = "connect" | "get" | "set" | "epoch_read" | "epoch_write";

export interface CacheMetrics {
  readonly hits: Counter<"route" | "tier">;
  readonly misses: Counter<"route">;
  readonly coalesced: Counter<"route" | "outcome">;
  readonly stores: Counter<"route">;
  readonly storeSkipped: Counter<"route" | "reason">;
  readonly bypass: Counter<"route" | "reason">;
  readonly evictions: Counter<"route" | "reason">;
  readonly bytes: Gauge<"route">;
  readonly epochChanges: Counter<"route" | "cause">;
  readonly redisErrors: Counter<"route" | "op">;
  readonly redisUp: Gauge;
  readonly redisCallSeconds: Histogram<"op">;
}

export function createCacheMetrics(registry: Registry): CacheMetrics {
  const registers = [registry];
  return {
    hits: new Counter({
      name: "guard_cache_hits_total",
      help: "Requests answered from the cache, by tier",
      labelNames: ["route", "tier"],
      registers,
    }),
    misses: new Counter({
      name: "guard_cache_misses_total",
      help: "Cacheable requests that went upstream",
      labelNames: ["route"],
      registers,
    }),
    coalesced: new Counter({
      name: "guard_cache_coalesced_total",
      help: "Requests that met an identical in-flight request: served by it, sent upstream after it failed or the wait timed out, or (streams) sent upstream without waiting",
      labelNames: ["route", "outcome"],
      registers,
    }),
    stores: new Counter({
      name: "guard_cache_stores_total",
      help: "Responses stored",
      labelNames: ["route"],
      registers,
    }),
    storeSkipped: new Counter({
      name: "guard_cache_store_skipped_total",
      help: "Responses to cacheable requests that were not stored, by reason",
      labelNames: ["route", "reason"],
      registers,
    }),
    bypass: new Counter({
      name: "guard_cache_bypass_total",
      help: "Requests on cache-enabled routes that were neither looked up nor stored, by reason",
      labelNames: ["route", "reason"],
      registers,
    }),
    evictions: new Counter({
      name: "guard_cache_evictions_total",
      help: "Entries removed from the in-process tier: size bound, TTL, or purge",
      labelNames: ["route", "reason"],
      registers,
    }),
    bytes: new Gauge({
      name: "guard_cache_bytes",
      help: "Bytes held by the in-process tier",
      labelNames: ["route"],
      registers,
    }),
    epochChanges: new Counter({
      name: "guard_cache_epoch_changes_total",
      help: "Times a route's cache epoch moved (model version observed here or by another sidecar, or purge)",
      labelNames: ["route", "cause"],
      registers,
    }),
    redisErrors: new Counter({
      name: "guard_cache_redis_errors_total",
      help: "Redis calls that failed or timed out (the request continued without the shared tier)",
      labelNames: ["route", "op"],
      registers,
    }),
    redisUp: new Gauge({
      name: "guard_cache_redis_up",
      help: "1 while the shared tier is in use, 0 while it is skipped as down",
      registers,
    }),
    redisCallSeconds: new Histogram({
      name: "guard_cache_redis_call_seconds",
      help: "Latency of Redis calls actually made (skipped calls while Redis is down are not observed), including timeouts",
      labelNames: ["op"],
      // Loopback Redis answers in ~0.1-1 ms; the upper buckets bracket the configured timeout (default 30 ms).
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1],
      registers,
    }),
  };
}
