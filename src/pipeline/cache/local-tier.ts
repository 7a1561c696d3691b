// In-process tier: an LRU bounded by bytes, with a TTL per entry (set from the route's ttlSeconds).
import { LRUCache } from "lru-cache";
import { type StoredResponse, storedSize } from "./entry.js";
import type { CacheMetrics, EvictionReason } from "./metrics.js";

interface LocalEntry {
  readonly route: string;
  readonly response: StoredResponse;
  /** Monotonic ms at which the response was produced upstream (for the age header). */
  readonly storedAt: number;
}

export interface CacheHit {
  readonly response: StoredResponse;
  readonly ageMs: number;
}

const EVICTION_REASON: Partial<Record<LRUCache.DisposeReason, EvictionReason>> = {
  evict: "size",
  expire: "expired",
  delete: "purged",
};

export class LocalTier {
  readonly #lru: LRUCache<string, LocalEntry>;
  readonly #now: () => number;
  readonly #bytesGauge: CacheMetrics["bytes"];

  constructor(maxBytes: number, now: () => number, metrics: CacheMetrics) {
    this.#now = now;
    this.#lru = new LRUCache<string, LocalEntry>({
      maxSize: maxBytes,
      sizeCalculation: (entry, key) => storedSize(key, entry.response),
      // lru-cache reads a start time of 0 as "no TTL"; a virtual clock starting at 0 must not make entries immortal.
      perf: { now: () => Math.max(now(), 1) },
      // Default 1 ms resolution caches now() behind a timer; virtual time needs every read to be live.
      ttlResolution: 0,
      dispose: (entry, key, reason) => {
        metrics.bytes.dec({ route: entry.route }, storedSize(key, entry.response));
        const eviction = EVICTION_REASON[reason];
        if (eviction !== undefined) metrics.evictions.inc({ route: entry.route, reason: eviction });
      },
    });
    this.#bytesGauge = metrics.bytes;
  }

  get(key: string): CacheHit | undefined {
    const entry = this.#lru.get(key);
    if (entry === undefined) return undefined;
    return { response: entry.response, ageMs: Math.max(0, this.#now() - entry.storedAt) };
  }

  /** ageMs > 0 when the response was already that old elsewhere (a shared-tier hit being copied here). */
  set(route: string, key: string, response: StoredResponse, ttlMs: number, ageMs = 0): void {
    if (ttlMs <= 0) return;
    const entry: LocalEntry = { route, response, storedAt: this.#now() - ageMs };
    this.#lru.set(key, entry, { ttl: ttlMs });
    // lru-cache refuses entries larger than the whole bound without calling dispose; count only kept ones.
    if (this.#lru.has(key)) this.#bytesGauge.inc({ route }, storedSize(key, response));
  }

  /** Drops every entry of a route; returns how many. */
  purgeRoute(route: string): number {
    const keys: string[] = [];
    for (const [key, entry] of this.#lru.entries()) if (entry.route === route) keys.push(key);
    for (const key of keys) this.#lru.delete(key);
    return keys.length;
  }

  get bytes(): number {
    return this.#lru.calculatedSize;
  }

  get entries(): number {
    return this.#lru.size;
  }
}
