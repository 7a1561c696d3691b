// Pure arithmetic of the streaming benchmark: per-run summaries of the clients' stream records,
// medians over runs, the added time against Envoy alone and the targets. No processes or files.
import { percentile } from "../../src/util/percentile.js";
import { median } from "../pipeline/stats.js";
import type { StreamRecord } from "./client.js";

/** One configuration at one concurrency in one run. */
export interface PointRun {
  readonly concurrency: number;
  /** Streams started in the measured window. */
  readonly streams: number;
  /** Of those: not 200, not ended by [DONE], or ended by an error event. */
  readonly failed: number;
  /** Why they failed: "status 503", "no answer", "error event", "no [DONE]". */
  readonly failures: Readonly<Record<string, number>>;
  /** SSE events the clients read during the window, per second. */
  readonly eventsPerSecond: number;
  readonly eventsPerStream: number;
  /** Ms from sending the request to the first event (the role chunk), p50 and p99 over streams. */
  readonly ttftP50Ms: number;
  readonly ttftP99Ms: number;
  /** Ms to the first event with non-empty content (an enforced check may hold an unsettled value). */
  readonly ttfcP50Ms: number;
  readonly ttfcP99Ms: number;
  /** Ms to the last event ([DONE]). */
  readonly lastP50Ms: number;
  readonly lastP99Ms: number;
  /** Ms between consecutive events of a stream, over every gap of every stream. */
  readonly gapP50Ms: number;
  readonly gapP90Ms: number;
  readonly gapP99Ms: number;
  /** Share of gaps under 1 ms: events that arrived together (held back, then released at once). */
  readonly gapsUnder1Ms: number;
  /** CPU (user + system) during the window ÷ events read in it; null without a guard or peer. */
  readonly serverCpuUsPerEvent: number | null;
  readonly envoyCpuUsPerEvent: number;
  /** The load generator's own CPU per event and event loop delay: a busy client blurs timings. */
  readonly clientCpuUsPerEvent: number;
  readonly clientLoopDelayP99Ms: number;
}

export interface WindowCounters {
  readonly windowSec: number;
  readonly events: number;
  readonly serverCpuSec: number | null;
  readonly envoyCpuSec: number;
  readonly clientCpuSec: number;
  readonly clientLoopDelayP99Ms: number;
}

function pct(values: readonly number[], q: number): number {
  return percentile(values, q) ?? Number.NaN;
}

export function summarisePoint(
  concurrency: number,
  records: readonly StreamRecord[],
  counters: WindowCounters,
): PointRun {
  const ok = records.filter((record) => record.complete);
  const failures: Record<string, number> = {};
  for (const record of records) {
    if (record.complete) continue;
    const reason =
      record.status === 0
        ? "no answer"
        : record.status !== 200
          ? `status ${record.status}`
          : record.errorEvent
            ? "error event"
            : "no [DONE]";
    failures[reason] = (failures[reason] ?? 0) + 1;
  }
  const pick = (field: "firstEventMs" | "firstContentMs" | "lastEventMs"): number[] =>
    ok.map((record) => record[field]).filter((value): value is number => value !== null);
  const ttft = pick("firstEventMs");
  const ttfc = pick("firstContentMs");
  const last = pick("lastEventMs");
  const gaps = ok.flatMap((record) => record.gapsMs);
  const events = Math.max(1, counters.events);
  const perEvent = (cpuSec: number): number => (cpuSec * 1e6) / events;
  return {
    concurrency,
    streams: records.length,
    failed: records.length - ok.length,
    failures,
    eventsPerSecond: counters.events / counters.windowSec,
    eventsPerStream: ok.length === 0 ? 0 : ok.reduce((sum, record) => sum + record.events, 0) / ok.length,
    ttftP50Ms: pct(ttft, 0.5),
    ttftP99Ms: pct(ttft, 0.99),
    ttfcP50Ms: pct(ttfc, 0.5),
    ttfcP99Ms: pct(ttfc, 0.99),
    lastP50Ms: pct(last, 0.5),
    lastP99Ms: pct(last, 0.99),
    gapP50Ms: pct(gaps, 0.5),
    gapP90Ms: pct(gaps, 0.9),
    gapP99Ms: pct(gaps, 0.99),
    gapsUnder1Ms: gaps.length === 0 ? 0 : gaps.filter((gap) => gap < 1).length / gaps.length,
    serverCpuUsPerEvent: counters.serverCpuSec === null ? null : perEvent(counters.serverCpuSec),
    envoyCpuUsPerEvent: perEvent(counters.envoyCpuSec),
    clientCpuUsPerEvent: perEvent(counters.clientCpuSec),
    clientLoopDelayP99Ms: counters.clientLoopDelayP99Ms,
  };
}

/** The numeric fields of a PointRun that are reported as medians over runs. */
export const MEDIAN_FIELDS = [
  "streams",
  "failed",
  "eventsPerSecond",
  "eventsPerStream",
  "ttftP50Ms",
  "ttftP99Ms",
  "ttfcP50Ms",
  "ttfcP99Ms",
  "lastP50Ms",
  "lastP99Ms",
  "gapP50Ms",
  "gapP90Ms",
  "gapP99Ms",
  "gapsUnder1Ms",
  "serverCpuUsPerEvent",
  "envoyCpuUsPerEvent",
  "clientCpuUsPerEvent",
  "clientLoopDelayP99Ms",
] as const satisfies readonly (keyof PointRun)[];

export type MedianField = (typeof MEDIAN_FIELDS)[number];
export type PointMedians = Record<MedianField, number | null>;

export function medians(runs: readonly PointRun[]): PointMedians {
  const out = {} as PointMedians;
  for (const field of MEDIAN_FIELDS) {
    const values = runs.map((run) => run[field]).filter((value): value is number => value !== null);
    out[field] = values.length === 0 ? null : median(values);
  }
  return out;
}

/**
 * Added time against the baseline, paired by run: run i of a configuration minus run i of the
 * baseline (interleaved runs share the machine's state of the moment), then the median of the
 * differences. null when no run pairs up.
 */
export function pairedAdded(
  runs: readonly (PointRun | undefined)[],
  baseline: readonly (PointRun | undefined)[],
  field: MedianField,
): number | null {
  const differences: number[] = [];
  for (const [index, run] of runs.entries()) {
    const base = baseline[index];
    const value = run?.[field];
    const floor = base?.[field];
    if (typeof value === "number" && typeof floor === "number" && Number.isFinite(value) && Number.isFinite(floor))
      differences.push(value - floor);
  }
  return differences.length === 0 ? null : median(differences);
}

/** (max − min) over runs: how far the baseline itself moves between runs. */
export function spread(runs: readonly (PointRun | undefined)[], field: MedianField): number {
  const values = runs
    .map((run) => run?.[field])
    .filter((value): value is number => typeof value === "number" && Number.isFinite(value));
  return values.length < 2 ? 0 : Math.max(...values) - Math.min(...values);
}
