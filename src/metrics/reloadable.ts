import { Counter, Histogram, type Metric, Registry } from "prom-client";

/** prom-client keeps a metric's series in this map; it has no public way to hand them on. */
interface SeriesHolder {
  hashMap: Record<string, unknown>;
  readonly labelNames?: readonly string[];
  readonly upperBounds?: readonly number[];
}

const holder = (metric: Metric): SeriesHolder => metric as unknown as SeriesHolder;

/** Counters and histograms of the same label names and buckets: the new one can go on from the old. */
function cumulativeAlike(previous: Metric, next: Metric): boolean {
  const kind = [Counter, Histogram].find((type) => next instanceof type);
  if (kind === undefined || !(previous instanceof kind)) return false;
  const sorted = (names: readonly string[] | undefined): string => [...(names ?? [])].sort().join(",");
  const [before, after] = [holder(previous), holder(next)];
  return (
    sorted(before.labelNames) === sorted(after.labelNames) &&
    String(before.upperBounds ?? []) === String(after.upperBounds ?? [])
  );
}

/**
 * A registry on which a metric name registered again replaces the earlier metric instead of
 * throwing: a config reload builds new stages that register their metrics anew. carryOver, called
 * once the new stages are built, lets each new counter and histogram take over its predecessor's
 * series, shared: they go on across a reload (no counter reset for Prometheus to read), and what
 * the previous pipeline still counts for its last streams lands in the same series. Gauges are the
 * new stages' state and start afresh, as does a metric whose labels or buckets changed;
 * dropRoutesOtherThan removes the series of routes the new config no longer has.
 */
export class ReloadableRegistry extends Registry {
  readonly #replaced = new Map<string, Metric>();

  override registerMetric<T extends string>(metric: Metric<T>): void {
    const name = (metric as unknown as { name: string }).name;
    const previous = this.getSingleMetric(name);
    if (previous !== undefined) {
      this.removeSingleMetric(name);
      if (!this.#replaced.has(name)) this.#replaced.set(name, previous);
    }
    super.registerMetric(metric);
  }

  /**
   * After a rebuild: the counters and histograms registered again continue their predecessors'
   * series. Not at registration, where prom-client's constructors have not yet set up the metric.
   */
  carryOver(): void {
    for (const [name, previous] of this.#replaced) {
      const next = this.getSingleMetric(name);
      if (next !== undefined && cumulativeAlike(previous, next)) holder(next).hashMap = holder(previous).hashMap;
    }
    this.#replaced.clear();
  }

  /** Removes every series whose `route` label names a route not in `routes`. */
  dropRoutesOtherThan(routes: ReadonlySet<string>): void {
    // The registry holds the metric objects themselves; its typings only promise their JSON shape.
    for (const metric of this.getMetricsAsArray() as unknown as Metric[]) {
      if (!(holder(metric).labelNames ?? []).includes("route")) continue;
      const series = Object.values(holder(metric).hashMap) as Array<{ labels?: Record<string, string | number> }>;
      for (const { labels } of series)
        if (labels?.route !== undefined && !routes.has(String(labels.route))) metric.remove(labels);
    }
  }
}
