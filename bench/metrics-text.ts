// Reading the guard's /metrics (Prometheus text) in benchmark scripts.

/** Value of an unlabelled or single-series metric; undefined when the text has no such line. */
export function metricValue(text: string, name: string): number | undefined {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** Sum of every series of `name` whose labels include all of `labels` (0 when none matches). */
export function metricSum(text: string, name: string, labels: Readonly<Record<string, string>>): number {
  let sum = 0;
  for (const match of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, "gm"))) {
    const found = new Map([...(match[1] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((pair) => [pair[1], pair[2]]));
    if (Object.entries(labels).every(([key, value]) => found.get(key) === value)) sum += Number(match[2]);
  }
  return sum;
}
