// A monotonic clock and timers that only move when a test says so.
import type { Timers } from "../../src/util/timers.js";

interface Pending {
  readonly at: number;
  readonly callback: () => void;
}

export class VirtualTime {
  #now = 1_000;
  readonly #pending = new Set<Pending>();

  readonly now = (): number => this.#now;

  readonly timers: Timers = {
    set: (callback, ms) => {
      const pending = { at: this.#now + ms, callback };
      this.#pending.add(pending);
      return pending;
    },
    clear: (handle) => {
      this.#pending.delete(handle as Pending);
    },
  };

  /** Moves the clock and runs every timer that falls due, in order. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      const next = [...this.#pending].filter((pending) => pending.at <= target).sort((a, b) => a.at - b.at)[0];
      if (next === undefined) break;
      this.#pending.delete(next);
      this.#now = next.at;
      next.callback();
    }
    this.#now = target;
  }

  get pendingTimers(): number {
    return this.#pending.size;
  }
}
