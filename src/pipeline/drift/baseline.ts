// Which version a route's versions are compared against: the one pinned in config, or else the
// version that served most answers over a trailing window. The window is kept as BUCKETS counts per
// version, so the memory is bounded and old traffic ages out without a timer.
const BUCKETS = 12;

export class TrafficWindow {
  readonly #bucketMs: number;
  /** Per version, its counts by bucket number (floor(now / bucketMs)), oldest dropped as time passes. */
  readonly #counts = new Map<string, Map<number, number>>();
  /** The last choice, kept while no version had traffic in the window (an idle route keeps its baseline). */
  #last: string | undefined;

  constructor(windowMs: number) {
    this.#bucketMs = Math.max(1, Math.ceil(windowMs / BUCKETS));
  }

  record(version: string, now: number): void {
    const bucket = Math.floor(now / this.#bucketMs);
    let counts = this.#counts.get(version);
    if (counts === undefined) {
      counts = new Map();
      this.#counts.set(version, counts);
    }
    counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
  }

  /** Answers of `version` within the window ending at `now`. */
  recent(version: string, now: number): number {
    const oldest = Math.floor(now / this.#bucketMs) - BUCKETS + 1;
    const counts = this.#counts.get(version);
    if (counts === undefined) return 0;
    let sum = 0;
    for (const [bucket, count] of counts) {
      if (bucket < oldest) counts.delete(bucket);
      else sum += count;
    }
    return sum;
  }

  /** The version with most answers in the window; on a tie the one seen first. */
  busiest(now: number): string | undefined {
    let best: string | undefined;
    let bestCount = 0;
    for (const version of this.#counts.keys()) {
      const count = this.recent(version, now);
      if (count > bestCount) {
        best = version;
        bestCount = count;
      }
    }
    if (best !== undefined) this.#last = best;
    return this.#last;
  }
}
