// Reading the guard's /metrics (Prometheus text) in benchmark scripts.

/** Value of an unlabelled or single-series metric; undefined when the text has no such line. */
export function metricValue(text: string, name: string): number | undefined {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}
