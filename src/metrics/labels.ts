const OTHER = "other";

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
    if (this.#seen.size >= this.limit) return OTHER;
    this.#seen.add(clipped);
    return clipped;
  }
}

/**
 * A label naming the heaviest keys (tenants): the `limit` keys of largest weight, by the caller's
 * measure of recent use, keep their own name; every other key reads "other". A newcomer takes the
 * place of the lightest named key once it outweighs it, and that key reads "other" from then on:
 * its series stops growing, and a sum over the label stays exact. Unlike first-come naming, the
 * tenants on a dashboard are the ones using the service now, whatever the order they arrived in.
 */
export class TopLabel {
  /** Named key → its label value. */
  readonly #named = new Map<string, string>();

  constructor(
    readonly limit: number,
    readonly maxLength: number,
    readonly weightOf: (key: string) => number,
  ) {}

  /** The label for `key`, shown as `name` (clipped to maxLength) while the key is among the heaviest. */
  value(key: string, name: string): string {
    const named = this.#named.get(key);
    if (named !== undefined) return named;
    const clipped = name.length > this.maxLength ? name.slice(0, this.maxLength) : name;
    if (this.#named.size < this.limit) {
      this.#named.set(key, clipped);
      return clipped;
    }
    const weight = this.weightOf(key);
    let lightest: string | undefined;
    let lightestWeight = weight;
    for (const candidate of this.#named.keys()) {
      const candidateWeight = this.weightOf(candidate);
      if (candidateWeight < lightestWeight) {
        lightest = candidate;
        lightestWeight = candidateWeight;
      }
    }
    if (lightest === undefined) return OTHER;
    this.#named.delete(lightest);
    this.#named.set(key, clipped);
    return clipped;
  }
}
