// One connection to the shared Redis tier, for the stages that share state between sidecars (the
// cache's entries and epochs, the tenant budgets, the drift profiles, the rollouts). Redis is an
// optimisation, never a dependency: every call is bounded by timeoutMs, a failure is reported as
// undefined (the stage falls back to its in-process state), and while Redis is known down calls
// are skipped (one probe per interval). The same holds for one server, a Redis Cluster (ioredis'
// Cluster client follows slot moves and failovers) and a Sentinel-watched master (ioredis asks
// the sentinels for the master on every reconnect; a write refused as READONLY reconnects).
import { createRequire } from "node:module";
import type { Cluster, Redis, RedisOptions } from "ioredis";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import { describeTarget, endpointOf, type RedisTarget } from "../config-kit/redis.js";
import type { Timers } from "../util/timers.js";

export interface SharedRedisSettings {
  readonly target: RedisTarget;
  readonly timeoutMs: number;
  readonly probeIntervalMs: number;
}

/** What the owning stage counts; `route` is undefined for connection-level failures. */
export interface SharedRedisEvents<Op extends string> {
  /** Each call's duration, for owners that time them. */
  readonly call?: (op: Op, seconds: number) => void;
  readonly failure: (op: Op | "connect", route: string | undefined) => void;
  readonly health: (up: boolean) => void;
}

export interface SharedRedisDeps<Op extends string> {
  readonly now: () => number;
  readonly log: Logger;
  readonly timers: Timers;
  readonly events: SharedRedisEvents<Op>;
  /** Who speaks in the log ("cache", "budget"), and what it does while Redis is down. */
  readonly purpose: string;
  readonly fallback: string;
}

/**
 * The commands the stages use, which both clients speak alike. A command's keys must hash to one
 * slot (a Cluster refuses anything else): multi-key commands and scripts use hash tags, and
 * commands on unrelated keys go out one by one, never as one pipeline or MGET.
 */
export type SharedClient = Redis | Cluster;

const TIMED_OUT = Symbol("timed out");

// ioredis is loaded only when a stage shares state through Redis: a guard without it never pays
// for the module. (ioredis 6.0's String subclass, its RESP3 VerbatimString, left String.prototype
// in V8's dictionary mode and every string method ~4× slower; 6.1 restores the fast mode, and
// test/unit/pipeline/redis-client-strings.test.ts keeps it so.) Cluster comes from the same module.
const require = createRequire(import.meta.url);
let ioredis: typeof import("ioredis") | undefined;
function loadRedis(): typeof import("ioredis") {
  ioredis ??= require("ioredis") as typeof import("ioredis");
  return ioredis;
}

const CLUSTER_SLOTS = 16_384;

// Repeated failures while down are logged at most this often; state changes are always logged.
const STILL_DOWN_LOG_INTERVAL_MS = 30_000;

/**
 * A server that refuses writes with READONLY has become a replica (a failover kept it running):
 * reconnect, to whatever the URL's name or the sentinels point at now. The refused command is not
 * sent again (1, not 2): it has failed, like any other, and the stage goes on without it.
 */
function readOnlyReconnects(error: Error): 1 | false {
  return error.message.startsWith("READONLY") ? 1 : false;
}

/** The client for a target, with the guarantees every target keeps: no offline queue, no retries. */
export function createClient(settings: SharedRedisSettings): SharedClient {
  const { Redis: RedisClient, Cluster: ClusterClient } = loadRedis();
  const { target, timeoutMs, probeIntervalMs } = settings;
  const reconnect = (attempt: number) => Math.min(attempt * 100, probeIntervalMs);
  const common = {
    commandTimeout: timeoutMs,
    connectTimeout: Math.max(timeoutMs, 1_000),
    // Nothing queues for a Redis that is not there: a command either runs now or fails now.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // RESP2 is understood by every Redis-compatible server; nothing here needs RESP3.
    protocol: 2,
  } satisfies RedisOptions;
  switch (target.kind) {
    case "single":
      return new RedisClient(target.url, { ...common, retryStrategy: reconnect, reconnectOnError: readOnlyReconnects });
    case "sentinel": {
      const sentinels = target.nodes.map(endpointOf);
      const [first] = sentinels;
      const tls = first?.tls === true;
      return new RedisClient({
        ...common,
        retryStrategy: reconnect,
        name: target.name,
        sentinels: sentinels.map(({ host, port }) => ({ host, port })),
        ...(first?.username === undefined ? {} : { sentinelUsername: first.username }),
        ...(first?.password === undefined ? {} : { sentinelPassword: first.password }),
        ...(target.username === undefined ? {} : { username: target.username }),
        ...(target.password === undefined ? {} : { password: target.password }),
        ...(tls ? { enableTLSForSentinelMode: true, sentinelTLS: {}, tls: {} } : {}),
        // A sentinel cut off from the others may still name the old master: ask the next one then.
        sentinelCommandTimeout: Math.max(timeoutMs, 1_000),
        // ioredis' failoverDetector is left off: a +switch-master arriving while the client is
        // reconnecting aborts that attempt and ends the client for good (seen in 1 of 5 failovers).
        // A failover that leaves the old master up is followed at its first refused write instead.
        reconnectOnError: readOnlyReconnects,
      });
    }
    case "cluster": {
      const nodes = target.nodes.map(endpointOf);
      const [first] = nodes;
      const { enableOfflineQueue, ...perNode } = common;
      return new ClusterClient(
        nodes.map(({ host, port }) => ({ host, port })),
        {
          enableOfflineQueue,
          clusterRetryStrategy: reconnect,
          // A command to a master that died is retried after a slot refresh; the call's own timeout
          // bounds the wait, and the retries stop when the replica has taken over (or after 3).
          retryDelayOnFailover: 100,
          retryDelayOnClusterDown: 100,
          maxRedirections: 3,
          slotsRefreshTimeout: Math.max(timeoutMs, 1_000),
          // No reconnecting to a node that went away (ioredis' default, kept on purpose): each
          // attempt would fail the tier anew; the next slot refresh tells where the slots went.
          redisOptions: {
            ...perNode,
            ...(first?.username === undefined ? {} : { username: first.username }),
            ...(first?.password === undefined ? {} : { password: first.password }),
            ...(first?.tls === true ? { tls: {} } : {}),
          },
        },
      );
    }
  }
}

/** Op: the owner's names of its calls, the label of its Redis metrics. */
export class SharedRedis<Op extends string> {
  readonly client: SharedClient;
  readonly #settings: SharedRedisSettings;
  readonly #deps: SharedRedisDeps<Op>;
  #healthy = true;
  #downUntil = 0;
  #probing = false;
  #lastDownLogAt = Number.NEGATIVE_INFINITY;

  constructor(settings: SharedRedisSettings, deps: SharedRedisDeps<Op>) {
    this.#settings = settings;
    this.#deps = deps;
    this.client = createClient(settings);
    this.client.on("error", (error: Error) => this.failed("connect", undefined, error));
    // A lost master is a failure of the tier: calls hashing to its slots fail until its replica
    // takes over, so all wait for a probe to succeed. A lost replica serves nothing here (reads go
    // to masters): the tier is as good as before.
    this.client.on("node error", (error: Error, node: string) => {
      if (this.#servesSlots(node)) this.failed("connect", undefined, error);
    });
    this.client.on("ready", () => this.#succeeded());
    deps.events.health(true);
  }

  /** True while calls are being made (connected and not in a failure back-off). */
  get usable(): boolean {
    return this.client.status === "ready" && this.#healthy;
  }

  /**
   * The servers holding keys, for commands that name none (SCAN): a cluster's masters, or the one
   * server. Throws (failing the call it is used in) while a slot has no connected master: during
   * a failover the lost master leaves the client before its slots move, and a walk of the others'
   * keys would pass for the whole.
   */
  masters(): readonly Redis[] {
    const { client } = this;
    if (!(client instanceof loadRedis().Cluster)) return [client];
    const servers = client.nodes("master");
    const connected = new Set(servers.map(({ options }) => `${options.host}:${options.port}`));
    for (let slot = 0; slot < CLUSTER_SLOTS; slot++) {
      const owner = client.slots[slot]?.[0];
      if (owner === undefined || !connected.has(owner)) throw new Error(`no connected master for slot ${slot}`);
    }
    return servers;
  }

  /** Resolves true once connected (at most after waitMs); false when Redis did not come up in time. */
  async connected(waitMs: number): Promise<boolean> {
    if (this.client.status === "ready") return true;
    let timer: unknown;
    let onReady = () => {};
    const ready = await Promise.race([
      new Promise<boolean>((resolve) => {
        onReady = () => resolve(true);
        this.client.once("ready", onReady);
      }),
      new Promise<boolean>((resolve) => {
        timer = this.#deps.timers.set(() => resolve(false), waitMs);
      }),
    ]);
    this.#deps.timers.clear(timer);
    this.client.off("ready", onReady);
    return ready;
  }

  /** undefined when skipped, failed or timed out; the failure is already counted and logged. */
  async call<T>(route: string, op: Op, command: () => Promise<T>): Promise<T | undefined> {
    if (this.client.status !== "ready") return undefined;
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
        this.failed(op, route, new Error(`no reply within ${this.#settings.timeoutMs} ms`));
        return undefined;
      }
      this.#succeeded();
      return result;
    } catch (error) {
      this.failed(op, route, error as Error);
      return undefined;
    } finally {
      this.#deps.events.call?.(op, (this.#deps.now() - started) / 1000);
      this.#deps.timers.clear(timer);
      if (probe) this.#probing = false;
    }
  }

  /** A failed call or a reply with errors in it: Redis is skipped until the next probe. */
  failed(op: Op | "connect", route: string | undefined, error: Error | undefined): void {
    this.#deps.events.failure(op, route);
    const now = this.#deps.now();
    this.#downUntil = now + this.#settings.probeIntervalMs;
    const wasHealthy = this.#healthy;
    this.#healthy = false;
    this.#deps.events.health(false);
    if (wasHealthy || now - this.#lastDownLogAt >= STILL_DOWN_LOG_INTERVAL_MS) {
      this.#lastDownLogAt = now;
      const { purpose, fallback } = this.#deps;
      this.#deps.log.warn(
        { redis: describeTarget(this.#settings.target), op, err: error?.message },
        wasHealthy ? `${purpose}: Redis unavailable, ${fallback}` : `${purpose}: Redis still unavailable`,
      );
    }
  }

  async close(): Promise<void> {
    try {
      await this.client.quit();
    } catch {}
    // QUIT ends the master's connection only: a sentinel client's subscriptions to every sentinel
    // (its failover detector) stay open until disconnect(), and would outlive a reload.
    this.client.disconnect();
  }

  /** Whether a cluster node ("host:port") is a master of some slot, as the client's slot map has it. */
  #servesSlots(node: string): boolean {
    const { client } = this;
    return !(client instanceof loadRedis().Cluster) || client.slots.some((owners) => owners?.[0] === node);
  }

  #succeeded(): void {
    if (this.#healthy) return;
    this.#healthy = true;
    this.#deps.events.health(true);
    this.#deps.log.info({ redis: describeTarget(this.#settings.target) }, `${this.#deps.purpose}: Redis is back`);
  }
}

/**
 * guard_<stage>_redis_up and guard_<stage>_redis_errors_total{op}: the health of a stage's fleet
 * connection, whose calls are not per route (the drift profiles, the rollouts' quarantines).
 */
export function registerFleetRedisMetrics<Op extends string>(
  registry: Registry,
  metric: { readonly stage: string; readonly up: string; readonly errors: string },
): SharedRedisEvents<Op> {
  const up = new Gauge({ name: `guard_${metric.stage}_redis_up`, help: metric.up, registers: [registry] });
  const errors = new Counter({
    name: `guard_${metric.stage}_redis_errors_total`,
    help: metric.errors,
    labelNames: ["op"],
    registers: [registry],
  });
  return { failure: (op) => errors.inc({ op }), health: (healthy) => up.set(healthy ? 1 : 0) };
}
