// Profiles across sidecars: each publishes its own per-version profiles to the shared Redis (one
// key per route, version and sidecar, expiring after a few sync intervals, so a sidecar that left
// drops out) and reads every other sidecar's, merged per route and version. Sketches and tables
// merge exactly, so the merged profile is the profile of all the fleet's answers. Redis is an
// optimisation: while it is away each sidecar reports what it saw itself. Each key is written and
// read by a command of its own, so on a Redis Cluster the profiles spread over the shards.
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { RedisTarget } from "../../config-kit/redis.js";
import type { Timers } from "../../util/timers.js";
import { SharedRedis, type SharedRedisEvents } from "../shared-redis.js";
import { type ProfileOptions, type SerialisedProfile, VersionProfile } from "./profile.js";

export type FleetOp = "publish" | "read";

export interface FleetSettings {
  readonly target: RedisTarget;
  readonly timeoutMs: number;
  readonly probeIntervalMs: number;
  readonly keyPrefix: string;
  readonly syncIntervalMs: number;
}

export interface FleetDeps {
  readonly now: () => number;
  readonly log: Logger;
  readonly timers: Timers;
  readonly events: SharedRedisEvents<FleetOp>;
  readonly options: ProfileOptions;
}

/** Published profiles outlive this many sync intervals of their sidecar's silence. */
const TTL_INTERVALS = 3;
/** Keys read per SCAN step. */
const SCAN_COUNT = 200;

/** route → version → profile. */
export type ProfilesByRoute = ReadonlyMap<string, ReadonlyMap<string, VersionProfile>>;

export class FleetProfiles {
  /** Other sidecars' profiles, merged, as of the last sync. */
  others: ProfilesByRoute = new Map();
  /** Counts the reads that replaced `others`: a report computed before the latest one is stale. */
  reads = 0;
  readonly #redis: SharedRedis<FleetOp>;
  readonly #settings: FleetSettings;
  readonly #deps: FleetDeps;
  readonly #id = randomBytes(6).toString("hex");
  #lastSync = Number.NEGATIVE_INFINITY;
  #syncing = false;

  constructor(settings: FleetSettings, deps: FleetDeps) {
    this.#settings = settings;
    this.#deps = deps;
    this.#redis = new SharedRedis<FleetOp>(settings, {
      ...deps,
      purpose: "drift",
      fallback: "each sidecar reports its own answers",
    });
  }

  /** Starts a sync when one is due (and none is running); never waits for it. `mine` is read only then. */
  syncIfDue(mine: () => ProfilesByRoute): void {
    if (this.#syncing || this.#deps.now() - this.#lastSync < this.#settings.syncIntervalMs) return;
    // Redis failures are handled inside; anything else must not become an unhandled rejection.
    this.sync(mine()).catch((error: unknown) =>
      this.#deps.log.warn({ err: (error as Error).message }, "drift: fleet sync failed"),
    );
  }

  /** Publishes `mine` and reads the others'. */
  async sync(mine: ProfilesByRoute): Promise<void> {
    this.#syncing = true;
    this.#lastSync = this.#deps.now();
    try {
      await this.#publish(mine);
      const others = await this.#read();
      if (others !== undefined) {
        this.others = others;
        this.reads++;
      }
    } finally {
      this.#syncing = false;
    }
  }

  /** Resolves true once connected (at most after waitMs). */
  connected(waitMs: number): Promise<boolean> {
    return this.#redis.connected(waitMs);
  }

  close(): Promise<void> {
    return this.#redis.close();
  }

  async #publish(mine: ProfilesByRoute): Promise<void> {
    const ttlMs = this.#settings.syncIntervalMs * TTL_INTERVALS;
    const { client } = this.#redis;
    const writes = [...mine].flatMap(([route, versions]) =>
      [...versions].map(
        ([version, profile]) => [this.#key(route, this.#id, version), JSON.stringify(profile)] as const,
      ),
    );
    await this.#redis.call("", "publish", () =>
      Promise.all(writes.map(([key, value]) => client.set(key, value, "PX", ttlMs))),
    );
  }

  async #read(): Promise<ProfilesByRoute | undefined> {
    const { client } = this.#redis;
    // SCAN walks one server's keys: a cluster's are walked on every master.
    const keys = await this.#redis.call("", "read", async () => {
      const found = await Promise.all(
        this.#redis.masters().map(async (server) => {
          const onServer: string[] = [];
          let cursor = "0";
          do {
            const [next, batch] = await server.scan(
              cursor,
              "MATCH",
              `${this.#settings.keyPrefix}p:*`,
              "COUNT",
              SCAN_COUNT,
            );
            cursor = next;
            onServer.push(...batch);
          } while (cursor !== "0");
          return onServer;
        }),
      );
      // A slot migrating between masters may show its keys on both.
      return [...new Set(found.flat())];
    });
    if (keys === undefined) return undefined;
    const theirs = keys.flatMap((key) => {
      const parsed = this.#parseKey(key);
      return parsed === undefined || parsed.sidecar === this.#id ? [] : [{ key, ...parsed }];
    });
    if (theirs.length === 0) return new Map();
    const values = await this.#redis.call("", "read", () => Promise.all(theirs.map(({ key }) => client.get(key))));
    if (values === undefined) return undefined;
    const merged = new Map<string, Map<string, VersionProfile>>();
    theirs.forEach(({ route, version }, index) => {
      const profile = parseProfile(values[index], this.#deps.options);
      if (profile === undefined || profile.version !== version) return;
      const versions = merged.get(route) ?? new Map<string, VersionProfile>();
      merged.set(route, versions);
      const known = versions.get(version);
      if (known === undefined) versions.set(version, profile);
      else known.merge(profile);
    });
    return merged;
  }

  /** <prefix>p:<route>:<sidecar>:<version> (route names and sidecar ids hold no ":"). */
  #key(route: string, sidecar: string, version: string): string {
    return `${this.#settings.keyPrefix}p:${route}:${sidecar}:${encodeURIComponent(version)}`;
  }

  #parseKey(key: string): { route: string; sidecar: string; version: string } | undefined {
    const [route, sidecar, ...rest] = key.slice(this.#settings.keyPrefix.length + 2).split(":");
    if (route === undefined || sidecar === undefined || rest.length === 0) return undefined;
    try {
      return { route, sidecar, version: decodeURIComponent(rest.join(":")) };
    } catch {
      return undefined;
    }
  }
}

/**
 * A profile another sidecar published; undefined for anything unreadable (another release,
 * corruption) or unmergeable: sketches of another relativeAccuracy (a sidecar on other settings).
 */
function parseProfile(text: string | null | undefined, options: ProfileOptions): VersionProfile | undefined {
  if (text === null || text === undefined) return undefined;
  try {
    const data = JSON.parse(text) as SerialisedProfile;
    const accuracies = [...data.fields, ...data.input].flatMap((field) =>
      field.sketch === undefined ? [] : [field.sketch.relativeAccuracy],
    );
    if (accuracies.some((accuracy) => accuracy !== options.relativeAccuracy)) return undefined;
    return VersionProfile.fromJSON(data, options);
  } catch {
    return undefined;
  }
}
