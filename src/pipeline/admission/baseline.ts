// Unloaded-latency estimates. A minimum is what an unloaded upstream shows (load only ever adds
// latency), but a minimum never forgets a faster past: after a model change the upstream may be
// slower for good. So the minimum decays upwards (doubles every doublingMs) unless refreshed.

export class DecayingMinimum {
  #value: number | undefined;
  #at = 0;

  constructor(readonly doublingMs: number) {}

  value(now: number): number | undefined {
    if (this.#value === undefined) return undefined;
    return this.#value * 2 ** (Math.max(0, now - this.#at) / this.doublingMs);
  }

  observe(sample: number, now: number): void {
    const current = this.value(now);
    if (current === undefined || sample <= current) {
      this.#value = sample;
      this.#at = now;
    }
  }
}

/** Quarter-octave cost buckets: requests within ~19% of each other share an estimate. */
const BUCKETS_PER_OCTAVE = 4;
const SMALLEST_COST = 1 / 16;
const BUCKET_COUNT = 32 * BUCKETS_PER_OCTAVE;

function bucketOf(cost: number): number {
  const index = Math.floor(BUCKETS_PER_OCTAVE * Math.log2(Math.max(cost, SMALLEST_COST) / SMALLEST_COST));
  return Math.min(BUCKET_COUNT - 1, index);
}

/**
 * The guard's own predictor of unloaded latency when the complexity stage gave none: the decaying
 * minimum of latency per cost unit, kept per cost bucket because fixed per-request overheads make
 * small requests slower per unit than large ones.
 */
export class UnloadedLatencyModel {
  readonly #perCost = new Map<number, DecayingMinimum>();

  constructor(readonly doublingMs: number) {}

  /** Predicted unloaded latency in ms, or undefined before any sample of a similar size. */
  predict(cost: number, now: number): number | undefined {
    const home = bucketOf(cost);
    // The nearest populated bucket stands in for an empty one; ties prefer the larger size.
    for (let distance = 0; distance < BUCKET_COUNT; distance++) {
      for (const index of [home + distance, home - distance]) {
        const msPerCost = this.#perCost.get(index)?.value(now);
        if (msPerCost !== undefined) return msPerCost * cost;
      }
      if (home + distance >= BUCKET_COUNT && home - distance < 0) break;
    }
    return undefined;
  }

  observe(cost: number, latencyMs: number, now: number): void {
    const index = bucketOf(cost);
    let minimum = this.#perCost.get(index);
    if (minimum === undefined) {
      minimum = new DecayingMinimum(this.doublingMs);
      this.#perCost.set(index, minimum);
    }
    minimum.observe(latencyMs / cost, now);
  }
}
