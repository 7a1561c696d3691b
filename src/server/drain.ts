// The guard's way out of a rolling restart. Readiness fails at once so load balancers, Kubernetes
// endpoints and Envoy's health checks of the guard cluster take the guard out of rotation; those
// need seconds to notice, and refusing streams in the meantime would fail (failure_mode_allow:
// false) or pass unguarded (true) every request that still arrives. So new streams are served for
// drain.graceMs more, then refused, and the streams still open get what is left of drain.timeoutMs,
// counted from the first signal so the guard's exit stays within the pod's termination budget.

/** Timer functions, injectable so tests drive the grace with virtual time. */
export interface DrainClock {
  now(): number;
  set(callback: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const realClock: DrainClock = {
  now: () => performance.now(),
  set: (callback, ms) => setTimeout(callback, ms),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface DrainPlan {
  readonly graceMs: number;
  readonly timeoutMs: number;
}

export interface DrainSteps {
  /** Readiness false everywhere the guard reports it. */
  notReady(): void;
  /** Refuses new streams from now on; the open ones may run for remainingMs, then are cut. */
  stopAccepting(remainingMs: number): Promise<{ forced: boolean }>;
}

export type DrainPhase = "serving" | "grace" | "closing";

export interface DrainResult {
  readonly forced: boolean;
  /** A second request ended the grace before its time. */
  readonly graceCut: boolean;
}

export class Drain {
  readonly #plan: DrainPlan;
  readonly #steps: DrainSteps;
  readonly #clock: DrainClock;
  #phase: DrainPhase = "serving";
  #done: Promise<DrainResult> | undefined;
  #endGrace: (() => void) | undefined;
  #graceCut = false;

  constructor(plan: DrainPlan, steps: DrainSteps, clock: DrainClock = realClock) {
    this.#plan = plan;
    this.#steps = steps;
    this.#clock = clock;
  }

  get phase(): DrainPhase {
    return this.#phase;
  }

  /**
   * The first call starts the drain; a call during the grace ends the grace now (an operator who
   * signals again wants the guard gone, not a shorter deadline for the open streams). Every call
   * resolves when the drain is over.
   */
  request(): Promise<DrainResult> {
    if (this.#done !== undefined) {
      if (this.#phase === "grace") {
        this.#graceCut = true;
        this.#endGrace?.();
      }
      return this.#done;
    }
    const startedAt = this.#clock.now();
    this.#phase = "grace";
    this.#steps.notReady();
    const graceOver = new Promise<void>((resolve) => {
      const timer = this.#clock.set(resolve, this.#plan.graceMs);
      this.#endGrace = () => {
        this.#clock.clear(timer);
        resolve();
      };
    });
    this.#done = graceOver.then(async () => {
      this.#phase = "closing";
      this.#endGrace = undefined;
      const remainingMs = Math.max(0, Math.round(this.#plan.timeoutMs - (this.#clock.now() - startedAt)));
      const { forced } = await this.#steps.stopAccepting(remainingMs);
      return { forced, graceCut: this.#graceCut };
    });
    return this.#done;
  }
}
