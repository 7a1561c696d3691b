// Unloaded-latency estimates. "Unloaded" is observed, not guessed: a request that had the upstream
// to itself (as far as this pool can tell: nothing else in flight when it was admitted and nothing
// admitted during its life) shows the unloaded latency, plus its own noise. A mean of such quiet
// samples is an unbiased estimate; a minimum is not: one lucky sample sets it far below the typical
// value, every later request then reads as slow, and as ever more extreme minima arrive the reading
// drifts upwards for as long as the process runs.
// Under sustained load no request is quiet. The estimate then falls back on the least-overlapped
// samples seen and otherwise stays frozen, so the reference is not lost exactly when it is needed.

/** Weight of the newest sample in the mean at the quietest overlap level. */
const QUIET_SMOOTHING = 0.1;

/**
 * The mean of the samples taken at the lowest overlap (other requests sharing the upstream) seen so
 * far. A sample at a lower overlap restarts the mean at that level; more overlapped ones are ignored.
 */
export class QuietestMean {
  #overlap = Number.POSITIVE_INFINITY;
  #mean: number | undefined;

  get value(): number | undefined {
    return this.#mean;
  }

  observe(sample: number, overlap: number): void {
    if (overlap < this.#overlap || this.#mean === undefined) {
      this.#overlap = overlap;
      this.#mean = sample;
    } else if (overlap === this.#overlap) {
      this.#mean += QUIET_SMOOTHING * (sample - this.#mean);
    }
  }
}

/** Quarter-octave cost buckets: requests within ~19% of each other share an estimate. */
const BUCKETS_PER_OCTAVE = 4;
const SMALLEST_COST = 1 / 16;
const BUCKET_COUNT = 32 * BUCKETS_PER_OCTAVE;

export function bucketOf(cost: number): number {
  const index = Math.floor(BUCKETS_PER_OCTAVE * Math.log2(Math.max(cost, SMALLEST_COST) / SMALLEST_COST));
  return Math.min(BUCKET_COUNT - 1, index);
}

/**
 * The guard's own predictor of unloaded latency when the complexity stage gave none: the quietest
 * mean latency per cost unit, kept per cost bucket because fixed per-request overheads make small
 * requests slower per unit than large ones.
 */
export class UnloadedLatencyModel {
  readonly #perCost = new Map<number, QuietestMean>();

  /** Predicted unloaded latency in ms, or undefined before any sample of a similar size. */
  predict(cost: number): number | undefined {
    const home = bucketOf(cost);
    // The nearest populated bucket stands in for an empty one; ties prefer the larger size.
    for (let distance = 0; distance < BUCKET_COUNT; distance++) {
      for (const index of [home + distance, home - distance]) {
        const msPerCost = this.#perCost.get(index)?.value;
        if (msPerCost !== undefined) return msPerCost * cost;
      }
      if (home + distance >= BUCKET_COUNT && home - distance < 0) break;
    }
    return undefined;
  }

  observe(cost: number, latencyMs: number, overlap: number): void {
    const index = bucketOf(cost);
    let estimate = this.#perCost.get(index);
    if (estimate === undefined) {
      estimate = new QuietestMean();
      this.#perCost.set(index, estimate);
    }
    estimate.observe(latencyMs / cost, overlap);
  }
}
