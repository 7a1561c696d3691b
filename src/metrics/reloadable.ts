import { type Metric, Registry } from "prom-client";

/**
 * A registry on which a metric name registered again replaces the earlier metric instead of
 * throwing. A config reload builds new stages that register their metrics anew; the new stages'
 * series are the ones exported from then on (their counters restart, which Prometheus reads as a
 * counter reset), while the core metrics, created once, carry on.
 */
export class ReloadableRegistry extends Registry {
  override registerMetric<T extends string>(metric: Metric<T>): void {
    const name = (metric as unknown as { name: string }).name;
    if (this.getSingleMetric(name) !== undefined) this.removeSingleMetric(name);
    super.registerMetric(metric);
  }
}
