/**
 * Keeps a metric label fed from traffic (model versions, tenants) to a bounded set of values:
 * the first `limit` distinct values are kept as they are, everything after that is "other".
 * Prometheus cost grows with every series, and one misbehaving client must not be able to
 * create unbounded series.
 */
export class BoundedLabel {
  readonly #seen = new Set<string>();

  constructor(
    readonly limit: number,
    readonly maxLength = 64,
  ) {}

  value(raw: string | undefined): string {
    if (raw === undefined || raw === "") return "none";
    const clipped = raw.length > this.maxLength ? raw.slice(0, this.maxLength) : raw;
    if (this.#seen.has(clipped)) return clipped;
    if (this.#seen.size >= this.limit) return "other";
    this.#seen.add(clipped);
    return clipped;
  }
}
