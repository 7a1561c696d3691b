// The load-shedding bench's results: per point and per priority class, summarised from the
// samples, and the fixed-width table `make bench-shed` prints.
import { percentile } from "../../src/util/percentile.js";
import type { Sample } from "./traffic.js";
import type { Priority, ShedBenchOptions, Variant } from "./workload.js";

export interface ClassStats {
  readonly offered: number;
  readonly ok: number;
  readonly good: number;
  readonly shed: number;
  /** Neither served nor shed: timeouts, resets, other errors. */
  readonly failed: number;
  readonly keptShare: number;
  readonly shedShare: number;
  readonly admittedP50Ms: number | null;
  readonly admittedP99Ms: number | null;
  /**
   * p99 of latency ÷ the request's own unloaded work: the slow-down independent of which sizes
   * happened to land in the sample (a p99 of ~70 requests is their largest one's latency).
   */
  readonly admittedSlowdownP99: number | null;
}

export interface PointResult {
  readonly variant: Variant;
  readonly load: number;
  readonly offeredPerSecond: number;
  readonly durationSeconds: number;
  readonly goodputPerSecond: number;
  /** Goodput in server work (ms of unloaded work per second of good answers) ÷ measured capacity. */
  readonly goodputShareOfCapacity: number;
  readonly admittedP50Ms: number | null;
  readonly admittedP99Ms: number | null;
  readonly shedAnswerP50Ms: number | null;
  readonly shedAnswerP99Ms: number | null;
  readonly generatorLagP99Ms: number;
  /** Answers other than 200 by status and shed reason. */
  readonly failures: Readonly<Record<string, number>>;
  readonly byClass: Readonly<Record<Priority, ClassStats>>;
  /** What the server and the guard looked like during the point (sampled every TELEMETRY_EVERY_MS). */
  readonly telemetry: Telemetry;
}

export interface Telemetry {
  /** Mean busy batch slots ÷ capacity: how much of the server the point kept working. */
  readonly serverUtilisation: number;
  /** Mean requests waiting in the model server's own queue. */
  readonly serverQueue: number;
  /** The guard's budget (cost units) and in-flight cost, mean over the point; null without a guard. */
  readonly guardLimitCost: number | null;
  /** The budget's coefficient of variation over the point's samples; null without a guard. */
  readonly guardLimitCv: number | null;
  readonly guardInFlightCost: number | null;
  /**
   * Per class, requests the guard admitted after queueing and their mean wait there (from its queue
   * wait histogram, over the point): with the class's latency it splits guard wait from server
   * time. null without a guard.
   */
  readonly guardQueue: Readonly<Record<Priority, QueueWait>> | null;
}

export interface QueueWait {
  readonly admittedAfterWait: number;
  readonly meanWaitMs: number | null;
}

export interface UnloadedLatency {
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** p99 of latency ÷ the request's own work (the stack's per-request overhead, mostly). */
  readonly slowdownP99: number;
}

export interface Calibration {
  /** Requests per second and unloaded work-ms per second the saturated server completes. */
  readonly capacityPerSecond: number;
  readonly capacityWorkMsPerSecond: number;
  /** p50/p99 of single requests on an idle stack, per variant. */
  readonly unloaded: Readonly<Partial<Record<Variant, UnloadedLatency>>>;
}

export interface ShedReport {
  readonly date: string;
  readonly options: Omit<ShedBenchOptions, "log">;
  readonly calibration: Calibration;
  readonly points: readonly PointResult[];
}

export function round(value: number | null | undefined, digits = 1): number | null {
  return value === null || value === undefined ? null : Math.round(value * 10 ** digits) / 10 ** digits;
}

/** A nearest-rank quantile of one latency field of the samples, rounded to 0.1 ms. */
function quantile(samples: readonly Sample[], field: "ms" | "lagMs", q: number): number | null {
  return round(
    percentile(
      samples.map((sample) => sample[field]),
      q,
    ),
  );
}

function classStats(samples: readonly Sample[]): ClassStats {
  const ok = samples.filter((sample) => sample.status === 200);
  const shed = samples.filter((sample) => sample.shed).length;
  const offered = samples.length;
  return {
    offered,
    ok: ok.length,
    good: samples.filter((sample) => sample.good).length,
    shed,
    failed: offered - ok.length - shed,
    keptShare: round(offered === 0 ? 1 : ok.length / offered, 4) ?? 1,
    shedShare: round(offered === 0 ? 0 : shed / offered, 4) ?? 0,
    admittedP50Ms: quantile(ok, "ms", 0.5),
    admittedP99Ms: quantile(ok, "ms", 0.99),
    admittedSlowdownP99: round(
      percentile(
        ok.map((sample) => sample.ms / sample.workMs),
        0.99,
      ),
      2,
    ),
  };
}

export function summarise(
  variant: Variant,
  load: number,
  rate: number,
  durationMs: number,
  samples: readonly Sample[],
  calibration: Pick<Calibration, "capacityWorkMsPerSecond">,
  telemetry: Telemetry,
): PointResult {
  const seconds = durationMs / 1000;
  const good = samples.filter((sample) => sample.good);
  const ok = samples.filter((sample) => sample.status === 200);
  const shed = samples.filter((sample) => sample.shed);
  const goodWorkPerSecond = good.reduce((sum, sample) => sum + sample.workMs, 0) / seconds;
  return {
    variant,
    load,
    offeredPerSecond: round(rate, 2) ?? 0,
    durationSeconds: seconds,
    goodputPerSecond: round(good.length / seconds, 2) ?? 0,
    goodputShareOfCapacity: round(goodWorkPerSecond / calibration.capacityWorkMsPerSecond, 3) ?? 0,
    admittedP50Ms: quantile(ok, "ms", 0.5),
    admittedP99Ms: quantile(ok, "ms", 0.99),
    shedAnswerP50Ms: quantile(shed, "ms", 0.5),
    shedAnswerP99Ms: quantile(shed, "ms", 0.99),
    generatorLagP99Ms: quantile(samples, "lagMs", 0.99) ?? 0,
    failures: countOutcomes(samples.filter((sample) => sample.status !== 200)),
    byClass: {
      critical: classStats(samples.filter((sample) => sample.priority === "critical")),
      standard: classStats(samples.filter((sample) => sample.priority === "standard")),
      sheddable: classStats(samples.filter((sample) => sample.priority === "sheddable")),
    },
    telemetry,
  };
}

/** How many items fall under each key; items whose key is undefined are not counted. */
export function countBy<T>(items: readonly T[], keyOf: (item: T) => string | undefined): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) {
    const key = keyOf(item);
    if (key !== undefined) counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

export function countOutcomes(samples: readonly Sample[]): Record<string, number> {
  return countBy(samples, (sample) => sample.outcome);
}

function cell(value: number | null, width: number): string {
  return (value === null ? "-" : String(value)).padStart(width);
}

/** A fixed-width table, one line per variant and load point. */
export function formatTable(report: ShedReport): string {
  const header =
    "variant               load  offered/s  goodput/s  %cap  crit kept  p50/p99 crit ms   p50/p99 std ms    p50/p99 shd ms    shed crit/std/shd   shed answer p50/p99 ms";
  const lines = [header, "-".repeat(header.length)];
  for (const point of report.points) {
    const c = point.byClass;
    lines.push(
      [
        point.variant.padEnd(20),
        `${point.load}x`.padStart(5),
        cell(point.offeredPerSecond, 10),
        cell(point.goodputPerSecond, 10),
        cell(Math.round(point.goodputShareOfCapacity * 100), 5),
        cell(c.critical.keptShare, 10),
        `${cell(c.critical.admittedP50Ms, 7)}/${cell(c.critical.admittedP99Ms, -1)}`.padEnd(17),
        `${cell(c.standard.admittedP50Ms, 7)}/${cell(c.standard.admittedP99Ms, -1)}`.padEnd(17),
        `${cell(c.sheddable.admittedP50Ms, 7)}/${cell(c.sheddable.admittedP99Ms, -1)}`.padEnd(17),
        `${c.critical.shedShare}/${c.standard.shedShare}/${c.sheddable.shedShare}`.padStart(19),
        `${cell(point.shedAnswerP50Ms, 9)}/${cell(point.shedAnswerP99Ms, -1)}`,
      ].join(" "),
    );
  }
  return lines.join("\n");
}
