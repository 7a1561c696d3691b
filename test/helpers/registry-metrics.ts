// Reading metrics from a prom-client registry in unit tests. A metric the registry does not have is an
// error, never 0 or "no samples": a renamed or unregistered metric must fail the test that reads it.
import type { Registry } from "prom-client";

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  readonly labels: Readonly<Record<string, string | number>>;
  readonly value: number;
}

/**
 * The samples of `name` whose labels include all of `labels`. `name` is a metric or one of a
 * histogram's series (`_bucket`, `_sum`, `_count`). An empty list means the metric exists but no
 * matching series was ever recorded.
 */
export async function registrySamples(registry: Registry, name: string, labels: Labels = {}): Promise<Sample[]> {
  const metric = registry.getSingleMetric(name) ?? registry.getSingleMetric(name.replace(/_(bucket|sum|count)$/, ""));
  if (metric === undefined) throw new Error(`metric "${name}" is not registered`);
  const { name: metricName, type, values } = await metric.get();
  // prom-client's typings call `type` a numeric enum; at run time it is the type's name.
  const kind = String(type);
  // A histogram or summary has no series of its own name: reading one would always find nothing.
  if ((kind === "histogram" || kind === "summary") && name === metricName) {
    throw new Error(`metric "${name}" is a ${kind}: read its _bucket, _sum or _count series`);
  }
  // Histograms and summaries name each series (x_bucket, x_sum, x_count); other metrics leave it out.
  return (values as Array<(typeof values)[number] & { metricName?: string }>)
    .filter(
      (value) =>
        (value.metricName ?? metricName) === name &&
        Object.entries(labels).every(
          ([key, wanted]) => value.labels[key] !== undefined && String(value.labels[key]) === wanted,
        ),
    )
    .map((value) => ({ labels: value.labels as Sample["labels"], value: value.value }));
}

/** Sum over the matching samples: 0 when the metric exists and none matches (a counter never incremented). */
export async function registrySum(registry: Registry, name: string, labels: Labels = {}): Promise<number> {
  return (await registrySamples(registry, name, labels)).reduce((sum, sample) => sum + sample.value, 0);
}

/** The one matching sample's value; undefined when the metric exists and none matches. */
export async function registryValue(
  registry: Registry,
  name: string,
  labels: Labels = {},
): Promise<number | undefined> {
  const found = await registrySamples(registry, name, labels);
  if (found.length > 1) throw new Error(`${found.length} samples of "${name}" match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}
