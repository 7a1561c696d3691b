// Reading the guard's /metrics (Prometheus text), in benchmark scripts and end-to-end tests.

/** Value of an unlabelled or single-series metric; undefined when the text has no such line. */
export function metricValue(text: string, name: string): number | undefined {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** One sample line of a metric: its labels and value. */
export interface MetricSample {
  readonly labels: ReadonlyMap<string, string>;
  readonly value: number;
}

/**
 * Every sample of `name`. Throws when the text does not expose the metric at all (no `# TYPE` line
 * for it or, for `_bucket`, `_sum` and `_count`, for its histogram), so a renamed metric is an
 * error rather than nothing. Label values may hold escaped quotes.
 */
export function metricSamples(text: string, name: string): MetricSample[] {
  const family = name.replace(/_(bucket|sum|count)$/, "");
  const declared = text
    .split("\n")
    .some((line) => line.startsWith(`# TYPE ${name} `) || line.startsWith(`# TYPE ${family} `));
  if (!declared) throw new Error(`metric "${name}" is not exposed`);
  const samples: MetricSample[] = [];
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const labels = new Map(
      [...(match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map(
        (label) => [label[1] ?? "", label[2] ?? ""] as const,
      ),
    );
    samples.push({ labels, value: Number(match[3]) });
  }
  return samples;
}

/**
 * Sum of the samples of `name` whose labels include all of `labels`: 0 when the metric is exposed and
 * none matches (a labelled series never incremented has no line); throws as metricSamples does.
 */
export function metricSum(text: string, name: string, labels: Readonly<Record<string, string>> = {}): number {
  return metricSamples(text, name)
    .filter((sample) => Object.entries(labels).every(([key, value]) => sample.labels.get(key) === value))
    .reduce((sum, sample) => sum + sample.value, 0);
}
