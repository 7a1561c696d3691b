// Coalescing of identical concurrent misses: the first request (leader) goes upstream, later
// ones (followers) wait a bounded time for its response. A leader settles exactly once, with
// an entry or a failure; settling removes the flight, so nothing outlives its leader.

import type { Timers } from "../../util/timers.js";
import type { CacheHit } from "./local-tier.js";

/** Timer functions, injectable so tests drive timeouts with virtual time. */
export type WaitResult =
  | { readonly kind: "served"; readonly hit: CacheHit }
  | { readonly kind: "leader_failed" }
  | { readonly kind: "timeout" }
  /** The follower itself went away (its stream ended) before the leader settled. */
  | { readonly kind: "abandoned" };

export interface Leadership {
  /** First call wins; later calls do nothing. undefined = the leader has nothing to share. */
  settle(hit: CacheHit | undefined): void;
}

export interface Wait {
  readonly result: Promise<WaitResult>;
  abandon(): void;
}

export type Role =
  | { readonly role: "leader"; readonly leadership: Leadership }
  | { readonly role: "follower"; wait(ms: number): Wait };

type Waiter = (result: WaitResult) => void;

export class SingleFlight {
  readonly #flights = new Map<string, Set<Waiter>>();

  constructor(private readonly timers: Timers) {}

  join(key: string): Role {
    const waiters = this.#flights.get(key);
    if (waiters !== undefined) return { role: "follower", wait: (ms) => this.#wait(waiters, ms) };
    const created = new Set<Waiter>();
    this.#flights.set(key, created);
    let settled = false;
    return {
      role: "leader",
      leadership: {
        settle: (hit) => {
          if (settled) return;
          settled = true;
          this.#flights.delete(key);
          const result: WaitResult = hit === undefined ? { kind: "leader_failed" } : { kind: "served", hit };
          for (const waiter of [...created]) waiter(result);
        },
      },
    };
  }

  /** Flights in progress (for tests and leak checks). */
  get size(): number {
    return this.#flights.size;
  }

  #wait(waiters: Set<Waiter>, ms: number): Wait {
    let resolveWait: Waiter = () => {};
    const result = new Promise<WaitResult>((resolve) => {
      resolveWait = resolve;
    });
    let done = false;
    const finish: Waiter = (outcome) => {
      if (done) return;
      done = true;
      waiters.delete(finish);
      this.timers.clear(timer);
      resolveWait(outcome);
    };
    const timer = this.timers.set(() => finish({ kind: "timeout" }), ms);
    waiters.add(finish);
    return { result, abandon: () => finish({ kind: "abandoned" }) };
  }
}
