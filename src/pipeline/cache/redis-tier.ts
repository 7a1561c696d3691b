// Shared tier: Redis behind the in-process tier, so all sidecars of a service share entries and
// epochs. The connection (bounded calls, probing while down) is SharedRedis's; a failure is a miss.
// Every command names one key, so on a Redis Cluster entries spread over all the shards by their
// own hash (no hash tags): a route's hot entries do not pile up on one master.
import type { Logger } from "pino";
import type { RedisTarget } from "../../config-kit/redis.js";
import type { Timers } from "../../util/timers.js";
import { type SharedClient, SharedRedis } from "../shared-redis.js";
import type { CacheSettings } from "./config.js";
import { decodeEntry, encodeEntry, type StoredResponse } from "./entry.js";
import type { CacheHit } from "./local-tier.js";
import type { CacheMetrics, RedisOp } from "./metrics.js";

export interface SharedHit extends CacheHit {
  /** TTL Redis has left on the entry; a local copy must not outlive it. */
  readonly remainingMs: number;
}

/** A route's epoch as stored in Redis; null where Redis has no value. */
export interface SharedEpoch {
  readonly version: string | null;
  readonly purge: string | null;
}

export type EpochField = keyof SharedEpoch;

export interface RedisTierDeps {
  readonly now: () => number;
  readonly log: Logger;
  readonly metrics: CacheMetrics;
  readonly timers: Timers;
}

type RedisSettings = CacheSettings["redis"] & { readonly target: RedisTarget };

export class RedisTier {
  readonly #redis: SharedRedis<RedisOp>;
  readonly #client: SharedClient;
  readonly #settings: RedisSettings;

  constructor(settings: RedisSettings, deps: RedisTierDeps) {
    this.#settings = settings;
    const { metrics } = deps;
    this.#redis = new SharedRedis(settings, {
      ...deps,
      purpose: "cache",
      fallback: "serving from the local tier only",
      events: {
        call: (op, seconds) => metrics.redisCallSeconds.observe({ op }, seconds),
        failure: (op, route) => metrics.redisErrors.inc({ route: route ?? "", op }),
        health: (up) => metrics.redisUp.set(up ? 1 : 0),
      },
    });
    this.#client = this.#redis.client;
  }

  /** True while calls are being made (connected and not in a failure back-off). */
  get usable(): boolean {
    return this.#redis.usable;
  }

  /** Resolves true once connected (at most after waitMs); false when Redis did not come up in time. */
  connected(waitMs: number): Promise<boolean> {
    return this.#redis.connected(waitMs);
  }

  async get(route: string, key: string): Promise<SharedHit | undefined> {
    const reply = await this.#redis.call(route, "get", () =>
      this.#client.pipeline().getBuffer(this.#entryKey(key)).pttl(this.#entryKey(key)).exec(),
    );
    if (reply === undefined || reply === null) return undefined;
    const [[getError, value], [ttlError, remaining]] = reply as [[Error | null, unknown], [Error | null, unknown]];
    if (getError !== null || ttlError !== null) {
      this.#redis.failed("get", route, getError ?? ttlError ?? undefined);
      return undefined;
    }
    if (!Buffer.isBuffer(value) || typeof remaining !== "number" || remaining <= 0) return undefined;
    const entry = decodeEntry(value);
    if (entry === undefined) return undefined;
    return { response: entry.response, ageMs: Math.max(0, entry.ttlMs - remaining), remainingMs: remaining };
  }

  /** Fire and forget: a store never delays the response it is storing. */
  set(route: string, key: string, response: StoredResponse, ttlMs: number): void {
    void this.#redis.call(route, "set", () =>
      this.#client.set(this.#entryKey(key), encodeEntry({ response, ttlMs }), "PX", ttlMs),
    );
  }

  async readEpoch(route: string): Promise<SharedEpoch | undefined> {
    // Two GETs, not one MGET: the keys hash to different slots, and the fields are independent.
    const values = await this.#redis.call(route, "epoch_read", () =>
      Promise.all([
        this.#client.get(this.#epochKey(route, "version")),
        this.#client.get(this.#epochKey(route, "purge")),
      ]),
    );
    if (values === undefined) return undefined;
    return { version: values[0] ?? null, purge: values[1] ?? null };
  }

  /** Resolves to whether Redis now holds the value (false on failure, or when onlyIfAbsent found one). */
  async writeEpoch(route: string, field: EpochField, value: string, onlyIfAbsent: boolean): Promise<boolean> {
    const key = this.#epochKey(route, field);
    const reply = await this.#redis.call(route, "epoch_write", () =>
      onlyIfAbsent ? this.#client.set(key, value, "NX") : this.#client.set(key, value),
    );
    return reply === "OK";
  }

  close(): Promise<void> {
    return this.#redis.close();
  }

  #entryKey(key: string): string {
    return `${this.#settings.keyPrefix}e:${key}`;
  }

  #epochKey(route: string, field: EpochField): string {
    return `${this.#settings.keyPrefix}${field === "version" ? "v" : "p"}:${route}`;
  }
}
