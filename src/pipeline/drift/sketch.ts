// A mergeable quantile sketch of one numeric field (or of a string's length, a list's size):
// DDSketch (@datadog/sketches-js), plus the running mean and squared deviations (Chan's merge)
// that DDSketch does not keep and the variance-ratio collapse signal needs.
//
// Memory is bounded by clamping what goes in, not by the library's collapsing stores: in
// sketches-js 2.1.1 those over-count their lowest bucket once keys collapse (a store of 6 001
// values held 11 782 in bucket 0). Magnitudes are kept within [MIN_MAGNITUDE, MAX_MAGNITUDE]
// (smaller ones count as zero, larger ones at the bound), 21 decades: at 2 % accuracy a store
// then spans at most 1 210 buckets, 1 280 slots of 8 bytes with the store's growth chunk, so a
// sketch holds at most ~20 KiB (both signs over all 21 decades; a score in [0, 1] needs ~1 KiB).
import { DDSketch } from "@datadog/sketches-js";

/** Values nearer zero than this are zero: no output field needs finer resolution there. */
export const MIN_MAGNITUDE = 1e-9;
/** Larger values count as this: a sketch's buckets stay bounded whatever a model writes. */
export const MAX_MAGNITUDE = 1e12;

export interface SketchOptions {
  /** Relative accuracy of every quantile (DDSketch's guarantee). */
  readonly relativeAccuracy: number;
}

/** A sketch as plain JSON values: what two sidecars exchange, and what a test round-trips. */
export interface SerialisedSketch {
  readonly relativeAccuracy: number;
  readonly count: number;
  readonly mean: number;
  readonly m2: number;
  readonly min: number;
  readonly max: number;
  readonly zeros: number;
  /** [key, count] pairs of the positive and the negative store, non-empty buckets only. */
  readonly positive: readonly (readonly [number, number])[];
  readonly negative: readonly (readonly [number, number])[];
}

type Store = DDSketch["store"];

export class QuantileSketch {
  readonly #sketch: DDSketch;
  #mean = 0;
  #m2 = 0;

  constructor(readonly options: SketchOptions) {
    this.#sketch = new DDSketch({ relativeAccuracy: options.relativeAccuracy });
  }

  get count(): number {
    return this.#sketch.count;
  }

  /** Population variance; 0 for fewer than two values. */
  get variance(): number {
    return this.#sketch.count < 2 ? 0 : this.#m2 / this.#sketch.count;
  }

  add(raw: number): void {
    const magnitude = Math.abs(raw);
    const value = magnitude < MIN_MAGNITUDE ? 0 : magnitude > MAX_MAGNITUDE ? Math.sign(raw) * MAX_MAGNITUDE : raw;
    this.#sketch.accept(value);
    // Welford's update, so the variance neither overflows nor cancels on large, close values.
    const delta = value - this.#mean;
    this.#mean += delta / this.#sketch.count;
    this.#m2 += delta * (value - this.#mean);
  }

  merge(other: QuantileSketch): void {
    const mine = this.#sketch;
    const theirs = other.#sketch;
    if (theirs.count === 0) return;
    const before = mine.count;
    const total = before + theirs.count;
    const delta = other.#mean - this.#mean;
    this.#m2 += other.#m2 + (delta * delta * before * theirs.count) / total;
    this.#mean += (delta * theirs.count) / total;
    // sketches-js 2.1.1 merges the positive store only (its merge never touches negativeStore):
    // the negative one is merged here, unless the library copied the whole sketch (empty before).
    mine.merge(theirs);
    if (before > 0) mine.negativeStore.merge(theirs.negativeStore);
  }

  /**
   * The values at quantiles `qs` (each in [0, 1], ascending), in one pass over the buckets; NaN
   * each when empty. As DDSketch's own getValueAtQuantile, q is read at rank q·(count − 1).
   */
  quantiles(qs: readonly number[]): number[] {
    const sketch = this.#sketch;
    if (sketch.count === 0) return qs.map(() => Number.NaN);
    const values: number[] = [];
    const counts: number[] = [];
    const { mapping } = sketch;
    const negative: (readonly [number, number])[] = buckets(sketch.negativeStore);
    for (let i = negative.length - 1; i >= 0; i--) {
      const [key, count] = negative[i] as readonly [number, number];
      values.push(-mapping.value(key));
      counts.push(count);
    }
    if (sketch.zeroCount > 0) {
      values.push(0);
      counts.push(sketch.zeroCount);
    }
    forEachBucket(sketch.store, (key, count) => {
      values.push(mapping.value(key));
      counts.push(count);
    });
    const result: number[] = [];
    let bucket = 0;
    let running = counts[0] ?? 0;
    for (const q of qs) {
      const rank = q * (sketch.count - 1);
      while (running <= rank && bucket < values.length - 1) running += counts[++bucket] ?? 0;
      result.push(values[bucket] ?? Number.NaN);
    }
    return result;
  }

  /**
   * Share of values at or below x, every value read as its bucket's representative (the same
   * for every sketch of the same accuracy, so two sketches are binned alike).
   */
  shareAtOrBelow(x: number): number {
    const sketch = this.#sketch;
    if (sketch.count === 0) return 0;
    const { mapping } = sketch;
    let below = 0;
    forEachBucket(sketch.negativeStore, (key, count) => {
      if (-mapping.value(key) <= x) below += count;
    });
    if (x >= 0) below += sketch.zeroCount;
    forEachBucket(sketch.store, (key, count) => {
      if (mapping.value(key) <= x) below += count;
    });
    return below / sketch.count;
  }

  /** Share of values in the fullest bucket (or at zero): the numeric "share at the mode". */
  modeShare(): number {
    const sketch = this.#sketch;
    if (sketch.count === 0) return 0;
    let fullest = sketch.zeroCount;
    const visit = (_key: number, count: number): void => {
      if (count > fullest) fullest = count;
    };
    forEachBucket(sketch.store, visit);
    forEachBucket(sketch.negativeStore, visit);
    return fullest / sketch.count;
  }

  toJSON(): SerialisedSketch {
    const sketch = this.#sketch;
    return {
      relativeAccuracy: this.options.relativeAccuracy,
      count: sketch.count,
      mean: this.#mean,
      m2: this.#m2,
      // An empty sketch's ±Infinity would not survive JSON.
      min: sketch.count === 0 ? 0 : sketch.min,
      max: sketch.count === 0 ? 0 : sketch.max,
      zeros: sketch.zeroCount,
      positive: buckets(sketch.store),
      negative: buckets(sketch.negativeStore),
    };
  }

  static fromJSON(data: SerialisedSketch): QuantileSketch {
    const restored = new QuantileSketch({ relativeAccuracy: data.relativeAccuracy });
    if (data.count === 0) return restored;
    const sketch = restored.#sketch;
    for (const [key, count] of data.positive) sketch.store.add(key, count);
    for (const [key, count] of data.negative) sketch.negativeStore.add(key, count);
    sketch.zeroCount = data.zeros;
    sketch.count = data.count;
    sketch.sum = data.mean * data.count;
    sketch.min = data.min;
    sketch.max = data.max;
    restored.#mean = data.mean;
    restored.#m2 = data.m2;
    return restored;
  }
}

function forEachBucket(store: Store, visit: (key: number, count: number) => void): void {
  if (store.count === 0) return;
  const { bins, offset } = store;
  for (let index = 0; index < bins.length; index++) {
    const count = bins[index] ?? 0;
    if (count > 0) visit(index + offset, count);
  }
}

function buckets(store: Store): (readonly [number, number])[] {
  const pairs: (readonly [number, number])[] = [];
  forEachBucket(store, (key, count) => pairs.push([key, count]));
  return pairs;
}
