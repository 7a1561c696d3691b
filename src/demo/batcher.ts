// A continuous-batching accelerator in miniature: at most `capacity` requests are served at once,
// the rest wait in FIFO order, and every active request slows down as the batch fills
// (rate 1 / (1 + batchPenalty·(k−1)/C) while k are active). Work is tracked as remaining
// "alone" milliseconds and re-rated whenever k changes, so a request that shares the batch for
// half its life pays the penalty for that half only, as on a real GPU.

export interface BatcherLimits {
  /** 0 means unlimited slots and no slowdown. */
  readonly capacity: number;
  readonly batchPenalty: number;
}

export interface BatcherClock {
  /** Monotonic milliseconds. */
  readonly now: () => number;
  /** Runs `fn` after `delayMs`; returns a cancel function. */
  readonly schedule: (delayMs: number, fn: () => void) => () => void;
}

export const realClock: BatcherClock = {
  now: () => performance.now(),
  schedule: (delayMs, fn) => {
    const timer = setTimeout(fn, delayMs);
    return () => clearTimeout(timer);
  },
};

/** How a job ended: served in full, or dropped because its caller went away or the batcher closed. */
export type JobEnd = "served" | "aborted";

interface Job {
  remainingMs: number;
  readonly finish: (end: JobEnd) => void;
}

/** Timer slack: a timer may fire a hair before the float arithmetic says the work is done. */
const DONE_EPSILON_MS = 1e-3;

export class Batcher {
  readonly #active = new Set<Job>();
  readonly #waiting: Job[] = [];
  #limits: BatcherLimits;
  #lastAdvance: number;
  #cancelTimer: (() => void) | undefined;
  #maxActive = 0;

  constructor(
    limits: BatcherLimits,
    private readonly clock: BatcherClock = realClock,
  ) {
    this.#limits = limits;
    this.#lastAdvance = clock.now();
  }

  get active(): number {
    return this.#active.size;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  get maxActive(): number {
    return this.#maxActive;
  }

  resetPeak(): void {
    this.#maxActive = this.#active.size;
  }

  /** Serves `workMs` of alone-time; an abort removes the job wherever it is and frees its slot. */
  run(workMs: number, signal?: AbortSignal): Promise<JobEnd> {
    if (signal?.aborted === true) return Promise.resolve("aborted");
    return new Promise<JobEnd>((resolve) => {
      const onAbort = (): void => this.#drop(job);
      const job: Job = {
        remainingMs: Math.max(0, workMs),
        finish: (end) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(end);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#advance();
      this.#waiting.push(job);
      this.#settle();
    });
  }

  /** New limits apply from now on; work already done at the old rate stays done. */
  setLimits(limits: BatcherLimits): void {
    this.#advance();
    this.#limits = limits;
    this.#settle();
  }

  /** Ends every job as aborted and stops the timer, so nothing keeps the process alive. */
  close(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    const all = [...this.#active, ...this.#waiting];
    this.#active.clear();
    this.#waiting.length = 0;
    for (const job of all) job.finish("aborted");
  }

  #rate(): number {
    const { capacity, batchPenalty } = this.#limits;
    if (capacity <= 0) return 1;
    return 1 / (1 + (batchPenalty * (this.#active.size - 1)) / capacity);
  }

  #hasFreeSlot(): boolean {
    return this.#limits.capacity <= 0 || this.#active.size < this.#limits.capacity;
  }

  /** Credits the work done since the last change at the rate that held during it. */
  #advance(): void {
    const now = this.clock.now();
    const done = (now - this.#lastAdvance) * this.#rate();
    this.#lastAdvance = now;
    if (done <= 0) return;
    for (const job of this.#active) job.remainingMs -= done;
  }

  #drop(job: Job): void {
    this.#advance();
    const queued = this.#waiting.indexOf(job);
    if (queued >= 0) this.#waiting.splice(queued, 1);
    this.#active.delete(job);
    job.finish("aborted");
    this.#settle();
  }

  /** Completes finished jobs, admits waiters into free slots, and arms one timer for the next finish. */
  #settle(): void {
    for (;;) {
      for (const job of this.#active) {
        if (job.remainingMs <= DONE_EPSILON_MS) {
          this.#active.delete(job);
          job.finish("served");
        }
      }
      let admitted = false;
      while (this.#hasFreeSlot()) {
        const next = this.#waiting.shift();
        if (next === undefined) break;
        this.#active.add(next);
        admitted = true;
      }
      this.#maxActive = Math.max(this.#maxActive, this.#active.size);
      // A zero-work job admitted just now is already done; loop so it frees its slot at once.
      const instantlyDone = admitted && [...this.#active].some((job) => job.remainingMs <= DONE_EPSILON_MS);
      if (!instantlyDone) break;
    }
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    if (this.#active.size === 0) return;
    let soonest = Infinity;
    for (const job of this.#active) soonest = Math.min(soonest, job.remainingMs);
    this.#cancelTimer = this.clock.schedule(soonest / this.#rate(), () => {
      this.#cancelTimer = undefined;
      this.#advance();
      this.#settle();
    });
  }
}
