// Shared tier: Redis behind the in-process tier, so all sidecars of a service share entries and
// epochs. Redis is an optimisation, never a dependency: every call is bounded by timeoutMs, a
// failure is a miss, and while Redis is known down calls are skipped (one probe per interval).
import { createRequire } from "node:module";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { CacheSettings } from "./config.js";
import { decodeEntry, encodeEntry, type StoredResponse } from "./entry.js";
import type { CacheHit } from "./local-tier.js";
import type { CacheMetrics, RedisOp } from "./metrics.js";
import type { Timers } from "./single-flight.js";

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

type RedisSettings = CacheSettings["redis"] & { readonly url: string };

const TIMED_OUT = Symbol("timed out");

// ioredis is loaded only when a route shares entries through Redis. Loading it defines a subclass
// of String (its RESP3 VerbatimString), which turns String.prototype into a dictionary-mode
// object for the rest of the process: every String.prototype call in optimised code (charCodeAt
// in the token estimate, the protobuf UTF-8 writer, ...) then loses its fast path, ~4× slower
// per call (measured on Node 20).
const require = createRequire(import.meta.url);
let redisClass: typeof Redis | undefined;
function loadRedis(): typeof Redis {
  redisClass ??= (require("ioredis") as typeof import("ioredis")).Redis;
  return redisClass;
}

// Repeated failures while down are logged at most this often; state changes are always logged.
const STILL_DOWN_LOG_INTERVAL_MS = 30_000;

export class RedisTier {
  readonly #client: Redis;
  readonly #settings: RedisSettings;
  readonly #deps: RedisTierDeps;
  #healthy = true;
  #downUntil = 0;
  #probing = false;
  #lastDownLogAt = Number.NEGATIVE_INFINITY;

  constructor(settings: RedisSettings, deps: RedisTierDeps) {
    this.#settings = settings;
    this.#deps = deps;
    const RedisClient = loadRedis();
    this.#client = new RedisClient(settings.url, {
      commandTimeout: settings.timeoutMs,
      connectTimeout: Math.max(settings.timeoutMs, 1_000),
      // Nothing queues for a Redis that is not there: a command either runs now or fails now.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (attempt) => Math.min(attempt * 100, settings.probeIntervalMs),
      // RESP2 is understood by every Redis-compatible server; nothing here needs RESP3.
      protocol: 2,
    });
    this.#client.on("error", (error: Error) => this.#failed("connect", undefined, error));
    this.#client.on("ready", () => this.#succeeded());
    deps.metrics.redisUp.set(1);
  }

  /** True while calls are being made (connected and not in a failure back-off). */
  get usable(): boolean {
    return this.#client.status === "ready" && this.#healthy;
  }

  /** Resolves true once connected (at most after waitMs); false when Redis did not come up in time. */
  async connected(waitMs: number): Promise<boolean> {
    if (this.#client.status === "ready") return true;
    let timer: unknown;
    let onReady = () => {};
    const ready = await Promise.race([
      new Promise<boolean>((resolve) => {
        onReady = () => resolve(true);
        this.#client.once("ready", onReady);
      }),
      new Promise<boolean>((resolve) => {
        timer = this.#deps.timers.set(() => resolve(false), waitMs);
      }),
    ]);
    this.#deps.timers.clear(timer);
    this.#client.off("ready", onReady);
    return ready;
  }

  async get(route: string, key: string): Promise<SharedHit | undefined> {
    const reply = await this.#call(route, "get", () =>
      this.#client.pipeline().getBuffer(this.#entryKey(key)).pttl(this.#entryKey(key)).exec(),
    );
    if (reply === undefined || reply === null) return undefined;
    const [[getError, value], [ttlError, remaining]] = reply as [[Error | null, unknown], [Error | null, unknown]];
    if (getError !== null || ttlError !== null) {
      this.#failed("get", route, getError ?? ttlError ?? undefined);
      return undefined;
    }
    if (!Buffer.isBuffer(value) || typeof remaining !== "number" || remaining <= 0) return undefined;
    const entry = decodeEntry(value);
    if (entry === undefined) return undefined;
    return { response: entry.response, ageMs: Math.max(0, entry.ttlMs - remaining), remainingMs: remaining };
  }

  /** Fire and forget: a store never delays the response it is storing. */
  set(route: string, key: string, response: StoredResponse, ttlMs: number): void {
    void this.#call(route, "set", () =>
      this.#client.set(this.#entryKey(key), encodeEntry({ response, ttlMs }), "PX", ttlMs),
    );
  }

  async readEpoch(route: string): Promise<SharedEpoch | undefined> {
    const values = await this.#call(route, "epoch_read", () =>
      this.#client.mget(this.#epochKey(route, "version"), this.#epochKey(route, "purge")),
    );
    if (values === undefined) return undefined;
    return { version: values[0] ?? null, purge: values[1] ?? null };
  }

  /** Resolves to whether Redis now holds the value (false on failure, or when onlyIfAbsent found one). */
  async writeEpoch(route: string, field: EpochField, value: string, onlyIfAbsent: boolean): Promise<boolean> {
    const key = this.#epochKey(route, field);
    const reply = await this.#call(route, "epoch_write", () =>
      onlyIfAbsent ? this.#client.set(key, value, "NX") : this.#client.set(key, value),
    );
    return reply === "OK";
  }

  async close(): Promise<void> {
    try {
      await this.#client.quit();
    } catch {
      this.#client.disconnect();
    }
  }

  #entryKey(key: string): string {
    return `${this.#settings.keyPrefix}e:${key}`;
  }

  #epochKey(route: string, field: EpochField): string {
    return `${this.#settings.keyPrefix}${field === "version" ? "v" : "p"}:${route}`;
  }

  /** undefined when skipped, failed or timed out; the failure is already counted and logged. */
  async #call<T>(route: string, op: RedisOp, command: () => Promise<T>): Promise<T | undefined> {
    if (this.#client.status !== "ready") return undefined;
    const probe = !this.#healthy;
    if (probe) {
      if (this.#probing || this.#deps.now() < this.#downUntil) return undefined;
      this.#probing = true;
    }
    let timer: unknown;
    const started = this.#deps.now();
    try {
      const result = await Promise.race([
        command(),
        new Promise<typeof TIMED_OUT>((resolve) => {
          timer = this.#deps.timers.set(() => resolve(TIMED_OUT), this.#settings.timeoutMs);
        }),
      ]);
      if (result === TIMED_OUT) {
        this.#failed(op, route, new Error(`no reply within ${this.#settings.timeoutMs} ms`));
        return undefined;
      }
      this.#succeeded();
      return result;
    } catch (error) {
      this.#failed(op, route, error as Error);
      return undefined;
    } finally {
      this.#deps.metrics.redisCallSeconds.observe({ op }, (this.#deps.now() - started) / 1000);
      this.#deps.timers.clear(timer);
      if (probe) this.#probing = false;
    }
  }

  #succeeded(): void {
    if (this.#healthy) return;
    this.#healthy = true;
    this.#deps.metrics.redisUp.set(1);
    this.#deps.log.info({ redis: this.#redactedUrl() }, "cache: Redis shared tier is back");
  }

  /** route is undefined for connection-level failures, which belong to no route. */
  #failed(op: RedisOp, route: string | undefined, error: Error | undefined): void {
    this.#deps.metrics.redisErrors.inc({ route: route ?? "", op });
    const now = this.#deps.now();
    this.#downUntil = now + this.#settings.probeIntervalMs;
    const wasHealthy = this.#healthy;
    this.#healthy = false;
    this.#deps.metrics.redisUp.set(0);
    if (wasHealthy || now - this.#lastDownLogAt >= STILL_DOWN_LOG_INTERVAL_MS) {
      this.#lastDownLogAt = now;
      this.#deps.log.warn(
        { redis: this.#redactedUrl(), op, err: error?.message },
        wasHealthy ? "cache: Redis unavailable, serving from the local tier only" : "cache: Redis still unavailable",
      );
    }
  }

  /** The URL may carry a password; logs get host and port only. */
  #redactedUrl(): string {
    try {
      const url = new URL(this.#settings.url);
      return `${url.protocol}//${url.host}`;
    } catch {
      return "redis";
    }
  }
}
