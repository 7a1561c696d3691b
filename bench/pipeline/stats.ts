// Pure arithmetic of the pipeline benchmark: h2load log parsing, percentiles, medians over runs
// and the noise flag. Kept free of processes and files so it is unit-tested.
import { percentile } from "../../src/util/percentile.js";

/** One row of h2load's --log-file: start (µs since epoch), status (-1 = failed stream), µs to end of response. */
export interface LoggedRequest {
  readonly startUs: number;
  readonly status: number;
  readonly durationUs: number;
}

/** Rows that are not three integers (a cut-off last line) are skipped, not fatal. */
export function parseH2loadLog(text: string): LoggedRequest[] {
  const rows: LoggedRequest[] = [];
  for (const line of text.split("\n")) {
    const [start, status, duration] = line.split("\t");
    if (start === undefined || status === undefined || duration === undefined) continue;
    const row = { startUs: Number(start), status: Number(status), durationUs: Number(duration) };
    if (Number.isInteger(row.startUs) && Number.isInteger(row.status) && Number.isInteger(row.durationUs))
      rows.push(row);
  }
  return rows;
}

export function median(values: readonly number[]): number {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const middle = finite.length >> 1;
  return finite.length % 2 === 1
    ? (finite[middle] ?? Number.NaN)
    : ((finite[middle - 1] ?? 0) + (finite[middle] ?? 0)) / 2;
}

/** (max − min) ÷ median: how far apart repeated runs landed; 0 for a single run. */
export function relativeSpread(values: readonly number[]): number {
  const finite = values.filter(Number.isFinite);
  if (finite.length < 2) return 0;
  const middle = median(finite);
  if (middle === 0) return 0;
  return (Math.max(...finite) - Math.min(...finite)) / Math.abs(middle);
}

export interface LatencySummary {
  /** Responses with a 2xx status: the only ones latency is computed over. */
  readonly ok: number;
  /** Non-2xx answers and failed streams. */
  readonly errors: number;
  /** Answers per status code ("-1" = failed stream). */
  readonly statuses: Readonly<Record<string, number>>;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

export function summariseLatency(rows: readonly LoggedRequest[]): LatencySummary {
  const durations: number[] = [];
  let errors = 0;
  const statuses: Record<string, number> = {};
  for (const row of rows) {
    statuses[row.status] = (statuses[row.status] ?? 0) + 1;
    if (row.status >= 200 && row.status < 300) durations.push(row.durationUs / 1000);
    else errors++;
  }
  durations.sort((a, b) => a - b);
  return {
    ok: durations.length,
    errors,
    statuses,
    p50Ms: percentile(durations, 0.5) ?? Number.NaN,
    p99Ms: percentile(durations, 0.99) ?? Number.NaN,
    p999Ms: percentile(durations, 0.999) ?? Number.NaN,
    maxMs: durations.at(-1) ?? Number.NaN,
  };
}

/** Which run-to-run spreads make a measurement point "noisy" in the report. */
export interface NoiseLimits {
  /** On p50 latency. */
  readonly p50: number;
  /** On achieved throughput. */
  readonly throughput: number;
}

export const DEFAULT_NOISE_LIMITS: NoiseLimits = { p50: 0.25, throughput: 0.15 };

export function isNoisy(
  p50s: readonly number[],
  throughputs: readonly number[],
  limits: NoiseLimits = DEFAULT_NOISE_LIMITS,
): boolean {
  return relativeSpread(p50s) > limits.p50 || relativeSpread(throughputs) > limits.throughput;
}
