// A route's cache epoch: the model version last observed on its responses plus a purge token.
// Both are part of every key, so changing either makes older entries unreachable at once
// (they age out by TTL/LRU instead of being hunted down). With Redis, the epoch is shared:
// each sidecar adopts what others wrote, within epochRefreshMs.
import { randomBytes } from "node:crypto";
import type { CacheMetrics } from "./metrics.js";
import type { EpochField, RedisTier, SharedEpoch } from "./redis-tier.js";

const INITIAL: SharedEpochValues = { version: "", purge: "0" };

type SharedEpochValues = { [field in EpochField]: string };

interface RouteEpoch {
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

  /** The epoch to key lookups with; also schedules a refresh from Redis when one is due. */
  current(route: string): string {
    const state = this.#state(route);
    if (
      this.#deps.redis !== undefined &&
      !state.refreshing &&
      this.#deps.now() - state.refreshedAt >= this.#deps.refreshMs
    ) {
      void this.refresh(route);
    }
    return epochToken(state.values);
  }

  /** The epoch a response of this model version belongs to (moving the route to it if it is new). */
  observeVersion(route: string, version: string | undefined): string {
    const state = this.#state(route);
    if (version !== undefined && version !== "" && version !== state.values.version) {
      this.#changeLocally(route, state, "version", version);
      void this.#push(route, state, "version", false);
    }
    return epochToken(state.values);
  }

  /** New purge token; resolves to whether Redis accepted it (other sidecars follow within epochRefreshMs). */
  async purge(route: string): Promise<boolean> {
    const state = this.#state(route);
    const token = (this.#deps.newPurgeToken ?? randomToken)();
    this.#changeLocally(route, state, "purge", token);
    return this.#push(route, state, "purge", false);
  }

  sharedReady(route: string): boolean {
    return this.#deps.redis !== undefined && this.#state(route).shared;
  }

  /** Reconciles with Redis: pushes unsynced local changes, adopts everything else. */
  async refresh(route: string): Promise<void> {
    const redis = this.#deps.redis;
    const state = this.#state(route);
    if (redis === undefined || state.refreshing) return;
    state.refreshing = true;
    state.refreshedAt = this.#deps.now();
    const changesBefore = state.changes;
    let shared: SharedEpoch | undefined;
    try {
      shared = await redis.readEpoch(route);
    } finally {
      state.refreshing = false;
    }
    if (shared === undefined || state.changes !== changesBefore) return;
    const pushes: Promise<boolean>[] = [];
    for (const field of ["version", "purge"] as const) {
      const theirs = shared[field];
      if (state.unsynced.has(field)) {
        pushes.push(this.#push(route, state, field, false));
      } else if (theirs === null) {
        // Redis lost its data (restart without persistence) or nobody wrote yet: offer ours, first writer wins.
        if (state.values[field] !== INITIAL[field]) pushes.push(this.#push(route, state, field, true));
      } else if (theirs !== state.values[field]) {
        state.values[field] = theirs;
        this.#deps.metrics.epochChanges.inc({ route, cause: "shared" });
        if (field === "purge") this.#deps.onPurged(route);
      }
    }
    await Promise.all(pushes);
    state.shared = true;
  }

  #changeLocally(route: string, state: RouteEpoch, field: EpochField, value: string): void {
    state.values[field] = value;
    state.changes += 1;
    this.#deps.metrics.epochChanges.inc({ route, cause: field });
    if (field === "purge") this.#deps.onPurged(route);
    if (this.#deps.redis !== undefined) state.unsynced.add(field);
  }

  async #push(route: string, state: RouteEpoch, field: EpochField, onlyIfAbsent: boolean): Promise<boolean> {
    const redis = this.#deps.redis;
    if (redis === undefined) return false;
    const value = state.values[field];
    const accepted = await redis.writeEpoch(route, field, value, onlyIfAbsent);
    if (accepted && state.values[field] === value) state.unsynced.delete(field);
    return accepted;
  }

  #state(route: string): RouteEpoch {
    let state = this.#routes.get(route);
    if (state === undefined) {
      state = {
        values: { ...INITIAL },
        shared: false,
        refreshing: false,
        refreshedAt: Number.NEGATIVE_INFINITY,
        unsynced: new Set(),
        changes: 0,
      };
      this.#routes.set(route, state);
    }
    return state;
  }
}

function epochToken(values: SharedEpochValues): string {
  return JSON.stringify([values.purge, values.version]);
}

function randomToken(): string {
  return randomBytes(9).toString("base64url");
}
