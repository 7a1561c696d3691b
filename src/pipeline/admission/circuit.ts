// Circuit breaker on upstream health. Closed: count upstream failures (5xx, timeouts) in a rolling
// window; too many → open: fail fast for openMs; then half-open: a few probes go through, all of
// them succeeding closes the circuit, any failure re-opens it. Time comes from the caller.
import type { CircuitConfig } from "./config.js";

export type CircuitState = "closed" | "open" | "half_open";

/** Gauge encoding of the state: ordered by severity. */
export const CIRCUIT_STATE_VALUE: Readonly<Record<CircuitState, number>> = { closed: 0, half_open: 1, open: 2 };

export type CircuitPermit =
  | { readonly allowed: true; readonly probe: boolean }
  | { readonly allowed: false; readonly retryAfterMs: number };

export type Verdict = "success" | "failure";

interface Bucket {
  epoch: number;
  total: number;
  failures: number;
}

export class CircuitBreaker {
  readonly #config: CircuitConfig;
  readonly #bucketMs: number;
  readonly #buckets: Bucket[];
  #state: CircuitState = "closed";
  #openedAt = 0;
  #probesStarted = 0;
  #probeSuccesses = 0;

  constructor(config: CircuitConfig) {
    this.#config = config;
    this.#bucketMs = config.windowMs / config.buckets;
    this.#buckets = Array.from({ length: config.buckets }, () => ({ epoch: -1, total: 0, failures: 0 }));
  }

  state(now: number): CircuitState {
    if (this.#state === "open" && now >= this.#openedAt + this.#config.openMs) {
      this.#state = "half_open";
      this.#probesStarted = 0;
      this.#probeSuccesses = 0;
    }
    return this.#state;
  }

  /** Asks to send one request upstream. A permitted probe must later be recorded or abandoned. */
  tryAcquire(now: number): CircuitPermit {
    if (!this.#config.enabled) return { allowed: true, probe: false };
    switch (this.state(now)) {
      case "closed":
        return { allowed: true, probe: false };
      case "open":
        return { allowed: false, retryAfterMs: this.#openedAt + this.#config.openMs - now };
      case "half_open":
        if (this.#probesStarted >= this.#config.halfOpenProbes) return { allowed: false, retryAfterMs: 0 };
        this.#probesStarted += 1;
        return { allowed: true, probe: true };
    }
  }

  /**
   * Records an upstream outcome. Outcomes of requests admitted before the circuit opened are
   * ignored while it is open or half-open: only probes judge the upstream's recovery.
   */
  record(verdict: Verdict, probe: boolean, now: number): void {
    if (!this.#config.enabled) return;
    const state = this.state(now);
    if (state === "half_open" && probe) {
      if (verdict === "failure") {
        this.#open(now);
        return;
      }
      this.#probeSuccesses += 1;
      if (this.#probeSuccesses >= this.#config.halfOpenProbes) this.#close();
      return;
    }
    if (state !== "closed") return;
    const bucket = this.#bucketFor(now);
    bucket.total += 1;
    if (verdict === "failure") bucket.failures += 1;
    const { total, failures } = this.#windowCounts(now);
    if (total >= this.#config.minRequests && failures / total >= this.#config.failureRatio) this.#open(now);
  }

  /** A probe ended without telling anything about the upstream (cancelled): free its slot. */
  abandonProbe(now: number): void {
    if (this.state(now) === "half_open" && this.#probesStarted > 0) this.#probesStarted -= 1;
  }

  #open(now: number): void {
    this.#state = "open";
    this.#openedAt = now;
  }

  #close(): void {
    this.#state = "closed";
    for (const bucket of this.#buckets) {
      bucket.total = 0;
      bucket.failures = 0;
    }
  }

  #bucketFor(now: number): Bucket {
    const epoch = Math.floor(now / this.#bucketMs);
    const bucket = this.#buckets[epoch % this.#buckets.length] as Bucket;
    if (bucket.epoch !== epoch) {
      bucket.epoch = epoch;
      bucket.total = 0;
      bucket.failures = 0;
    }
    return bucket;
  }

  #windowCounts(now: number): { total: number; failures: number } {
    const oldest = Math.floor(now / this.#bucketMs) - this.#buckets.length + 1;
    let total = 0;
    let failures = 0;
    for (const bucket of this.#buckets) {
      if (bucket.epoch >= oldest) {
        total += bucket.total;
        failures += bucket.failures;
      }
    }
    return { total, failures };
  }
}
