// A cache epoch: the route's purge token plus the model version last observed on the responses of
// one of its pools (its scope: the route, or the route and the complexity tier that picks the
// pool). Both are part of every key, so changing either makes older entries unreachable at once
// (they age out by TTL/LRU instead of being hunted down). Two pools on different versions during
// a rollout each keep their own scope, so they never move each other's epoch. With Redis, purge
// tokens and versions are shared: each sidecar adopts what others wrote, within epochRefreshMs.
import { randomBytes } from "node:crypto";
import type { CacheMetrics } from "./metrics.js";
import type { EpochField, RedisTier, SharedEpoch } from "./redis-tier.js";

const INITIAL: SharedEpochValues = { version: "", purge: "0" };

type SharedEpochValues = { [field in EpochField]: string };

/**
 * The shared values under one name: a route (its purge token; and its version when it has one
 * pool) or a route's pool scope (its version only; the purge field stays unused).
 */
interface RouteEpoch {
  /** The route these values belong to: the metrics' label. */
  readonly route: string;
  readonly values: SharedEpochValues;
  /** Whether Redis's view has been read once; until then this route does not use the shared tier. */
  shared: boolean;
  refreshing: boolean;
  refreshedAt: number;
  /** Local changes Redis has not accepted yet: a refresh pushes these instead of adopting Redis's. */
  readonly unsynced: Set<EpochField>;
  /** Bumped on every local change, so a refresh that raced one is discarded. */
  changes: number;
}

export interface EpochsDeps {
  readonly now: () => number;
  readonly metrics: CacheMetrics;
  readonly redis: RedisTier | undefined;
  readonly refreshMs: number;
  /** Called when a route's purge token changes (here or adopted from another sidecar). */
  readonly onPurged: (route: string) => void;
  readonly newPurgeToken?: () => string;
}

export class Epochs {
  readonly #routes = new Map<string, RouteEpoch>();
  readonly #deps: EpochsDeps;

  constructor(deps: EpochsDeps) {
    this.#deps = deps;
  }

  /**
   * The epoch to key a lookup of `scope` (the route, or one of its pools: scopeOf) with; also
   * schedules a refresh from Redis when one is due.
   */
  current(route: string, scope: string): string {
    for (const name of new Set([route, scope])) {
      const state = this.#state(name, route);
      if (
        this.#deps.redis !== undefined &&
        !state.refreshing &&
        this.#deps.now() - state.refreshedAt >= this.#deps.refreshMs
      ) {
        void this.refresh(name);
      }
    }
    return this.#token(route, scope);
  }

  /** The epoch a response of this model version from `scope` belongs to (moving the scope to it if it is new). */
  observeVersion(route: string, scope: string, version: string | undefined): string {
    const state = this.#state(scope, route);
    if (version !== undefined && version !== "" && version !== state.values.version) {
      this.#changeLocally(state, "version", version);
      void this.#push(scope, state, "version", false);
    }
    return this.#token(route, scope);
  }

  /** New purge token; resolves to whether Redis accepted it (other sidecars follow within epochRefreshMs). */
  async purge(route: string): Promise<boolean> {
    const state = this.#state(route, route);
    const token = (this.#deps.newPurgeToken ?? randomToken)();
    this.#changeLocally(state, "purge", token);
    return this.#push(route, state, "purge", false);
  }

  /** The model version `scope` is on now, as far as this sidecar knows; "" before any. */
  version(route: string, scope: string): string {
    return this.#state(scope, route).values.version;
  }

  /** Whether the route's and the scope's shared values have been read once (until then, no shared tier). */
  sharedReady(route: string, scope: string): boolean {
    return this.#deps.redis !== undefined && this.#state(route, route).shared && this.#state(scope, route).shared;
  }

  /** Reconciles a route or scope with Redis: pushes unsynced local changes, adopts everything else. */
  async refresh(name: string): Promise<void> {
    const redis = this.#deps.redis;
    const state = this.#state(name, name);
    if (redis === undefined || state.refreshing) return;
    state.refreshing = true;
    state.refreshedAt = this.#deps.now();
    const changesBefore = state.changes;
    let shared: SharedEpoch | undefined;
    try {
      shared = await redis.readEpoch(name);
    } finally {
      state.refreshing = false;
    }
    if (shared === undefined || state.changes !== changesBefore) return;
    const pushes: Promise<boolean>[] = [];
    for (const field of ["version", "purge"] as const) {
      const theirs = shared[field];
      if (state.unsynced.has(field)) {
        pushes.push(this.#push(name, state, field, false));
      } else if (theirs === null) {
        // Redis lost its data (restart without persistence) or nobody wrote yet: offer ours, first writer wins.
        if (state.values[field] !== INITIAL[field]) pushes.push(this.#push(name, state, field, true));
      } else if (theirs !== state.values[field]) {
        state.values[field] = theirs;
        this.#deps.metrics.epochChanges.inc({ route: state.route, cause: "shared" });
        if (field === "purge") this.#deps.onPurged(state.route);
      }
    }
    await Promise.all(pushes);
    state.shared = true;
  }

  #changeLocally(state: RouteEpoch, field: EpochField, value: string): void {
    state.values[field] = value;
    state.changes += 1;
    this.#deps.metrics.epochChanges.inc({ route: state.route, cause: field });
    if (field === "purge") this.#deps.onPurged(state.route);
    if (this.#deps.redis !== undefined) state.unsynced.add(field);
  }

  async #push(name: string, state: RouteEpoch, field: EpochField, onlyIfAbsent: boolean): Promise<boolean> {
    const redis = this.#deps.redis;
    if (redis === undefined) return false;
    const value = state.values[field];
    const accepted = await redis.writeEpoch(name, field, value, onlyIfAbsent);
    if (accepted && state.values[field] === value) state.unsynced.delete(field);
    return accepted;
  }

  /** The route's purge token and the scope's version. */
  #token(route: string, scope: string): string {
    return epochToken({
      purge: this.#state(route, route).values.purge,
      version: this.#state(scope, route).values.version,
    });
  }

  /** The values under `name` (a route, or a scope of `route`). */
  #state(name: string, route: string): RouteEpoch {
    let state = this.#routes.get(name);
    if (state === undefined) {
      state = {
        route: scopeRoute(name) ?? route,
        values: { ...INITIAL },
        shared: false,
        refreshing: false,
        refreshedAt: Number.NEGATIVE_INFINITY,
        unsynced: new Set(),
        changes: 0,
      };
      this.#routes.set(name, state);
    }
    return state;
  }
}

const SCOPE_SEPARATOR = "@";

/**
 * The scope of a route's versions: the route itself, or with the complexity tier that chose the
 * pool ("chat@heavy"), so pools on different versions keep apart. Route names cannot hold "@".
 */
export function scopeOf(route: string, tier: string | undefined): string {
  return tier === undefined ? route : `${route}${SCOPE_SEPARATOR}${tier}`;
}

function scopeRoute(name: string): string | undefined {
  const at = name.indexOf(SCOPE_SEPARATOR);
  return at < 0 ? undefined : name.slice(0, at);
}

function epochToken(values: SharedEpochValues): string {
  return JSON.stringify([values.purge, values.version]);
}

function randomToken(): string {
  return randomBytes(9).toString("base64url");
}
