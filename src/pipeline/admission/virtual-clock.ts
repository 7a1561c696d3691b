// The virtual clock the admission simulation and the controller tests run on: time that moves only
// when told to, and the timers due on the way.

import type { Scheduler } from "./controller.js";
import { MinHeap } from "./heap.js";

interface Timer {
  readonly atMs: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/** Virtual time and timers: the simulation's clock, and the controller tests'. */
export class VirtualClock {
  nowMs = 0;
  #seq = 0;
  readonly timers = new MinHeap<Timer>((a, b) => a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq));

  readonly schedule: Scheduler = (delayMs, fn) => {
    const timer: Timer = { atMs: this.nowMs + delayMs, seq: this.#seq++, fn, cancelled: false };
    this.timers.push(timer);
    return () => {
      timer.cancelled = true;
    };
  };

  readonly now = (): number => this.nowMs;

  nextTimerMs(): number {
    while (this.timers.peek()?.cancelled === true) this.timers.pop();
    return this.timers.peek()?.atMs ?? Number.POSITIVE_INFINITY;
  }

  /** Moves time forward to untilMs, running every timer due on the way in order. */
  advanceTo(untilMs: number): void {
    while (this.nextTimerMs() <= untilMs) {
      const timer = this.timers.pop() as Timer;
      this.nowMs = timer.atMs;
      timer.fn();
    }
    this.nowMs = Math.max(this.nowMs, untilMs);
  }
}
