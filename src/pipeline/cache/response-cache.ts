// The two tiers and the epochs behind one interface: lookups go local → Redis → miss, stores
// write both, purges move the epoch and empty the local tier.
import type { Logger } from "pino";
import { redisTarget } from "../../config-kit/redis.js";
import type { Timers } from "../../util/timers.js";
import type { CacheSettings } from "./config.js";
import type { StoredResponse } from "./entry.js";
import { Epochs } from "./epochs.js";
import { entryKey } from "./key.js";
import { type CacheHit, LocalTier } from "./local-tier.js";
import type { CacheMetrics, HitTier } from "./metrics.js";
import { RedisTier } from "./redis-tier.js";

export interface TieredHit extends CacheHit {
  readonly tier: HitTier;
}

export interface PurgeResult {
  readonly route: string;
  /** Entries dropped from this sidecar's memory. */
  readonly removedLocal: number;
  /** Whether Redis took the new epoch (so every sidecar stops serving the route's old entries). */
  readonly shared: boolean;
}

export interface ResponseCacheDeps {
  readonly now: () => number;
  readonly log: Logger;
  readonly metrics: CacheMetrics;
  readonly timers: Timers;
}

export class ResponseCache {
  readonly #local: LocalTier;
  readonly #redis: RedisTier | undefined;
  readonly #epochs: Epochs;

  constructor(settings: CacheSettings, deps: ResponseCacheDeps) {
    this.#local = new LocalTier(settings.maxBytes, deps.now, deps.metrics);
    const target = redisTarget(settings.redis);
    this.#redis = target === undefined ? undefined : new RedisTier({ ...settings.redis, target }, deps);
    this.#epochs = new Epochs({
      now: deps.now,
      metrics: deps.metrics,
      redis: this.#redis,
      refreshMs: settings.redis.epochRefreshMs,
      onPurged: (route) => this.#local.purgeRoute(route),
    });
  }

  /** Key under which a request to `scope` (epochs.ts, scopeOf) is looked up now. */
  lookupKey(route: string, scope: string, digest: string): string {
    return entryKey(digest, this.#epochs.current(route, scope));
  }

  lookupLocal(route: string, scope: string, key: string): TieredHit | undefined {
    const hit = this.#local.get(key);
    return hit === undefined || !this.#current(route, scope, hit.response) ? undefined : { ...hit, tier: "local" };
  }

  async lookupShared(route: string, scope: string, key: string): Promise<TieredHit | undefined> {
    if (this.#redis === undefined || !this.#epochs.sharedReady(route, scope)) return undefined;
    const hit = await this.#redis.get(route, key);
    if (hit === undefined || !this.#current(route, scope, hit.response)) return undefined;
    this.#local.set(route, key, hit.response, hit.remainingMs, hit.ageMs);
    return { response: hit.response, ageMs: hit.ageMs, tier: "redis" };
  }

  /** Whether an entry may answer for `scope`: it was produced by the version the scope is on (or records none). */
  #current(route: string, scope: string, response: StoredResponse): boolean {
    const current = this.#epochs.version(route, scope);
    return response.modelVersion === undefined || current === "" || response.modelVersion === current;
  }

  /**
   * A response of `scope` showed this model version: when it is new, the scope moves to it, and
   * lookups stop finding the entries of the version before, whether or not this response is stored.
   */
  observeVersion(route: string, scope: string, modelVersion: string | undefined): void {
    this.#epochs.observeVersion(route, scope, modelVersion);
  }

  /**
   * Files a response under the epoch of the model version that produced it, which moves the
   * scope to that epoch when the version is new. Returns the entry for waiting followers.
   */
  store(
    where: { readonly route: string; readonly scope: string },
    digest: string,
    response: StoredResponse,
    ttlMs: number,
    modelVersion: string | undefined,
  ): CacheHit {
    const { route, scope } = where;
    const key = entryKey(digest, this.#epochs.observeVersion(route, scope, modelVersion));
    const entry = modelVersion === undefined || modelVersion === "" ? response : { ...response, modelVersion };
    this.#local.set(route, key, entry, ttlMs);
    if (this.#redis !== undefined && this.#epochs.sharedReady(route, scope)) this.#redis.set(route, key, entry, ttlMs);
    return { response: entry, ageMs: 0 };
  }

  async purgeRoute(route: string): Promise<PurgeResult> {
    const before = this.#local.entries;
    // The synchronous part of purge() moves the epoch and empties the route locally.
    const pushed = this.#epochs.purge(route);
    const removedLocal = before - this.#local.entries;
    return { route, removedLocal, shared: await pushed };
  }

  /**
   * Connects to Redis and reads the shared epochs of routes and pool scopes (`names`). Until a
   * scope's values have been read it does not use the shared tier (its local view could be older
   * than a purge), so calling this before serving lets the first requests use Redis too. Never
   * fails: Redis is optional.
   */
  async warmUp(names: readonly string[], waitMs: number): Promise<void> {
    if (this.#redis === undefined || !(await this.#redis.connected(waitMs))) return;
    await Promise.all(names.map((name) => this.#epochs.refresh(name)));
  }

  get redisUsable(): boolean {
    return this.#redis?.usable ?? false;
  }

  async close(): Promise<void> {
    await this.#redis?.close();
  }
}
