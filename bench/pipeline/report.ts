// Turns rounds into the report: medians per measurement point, run-to-run spread and the noise flag,
// the headline row per configuration (added latency at the target rate, throughput ratio, guard
// CPU and memory) and the targets. render.ts writes it out as text and Markdown.
import type { BenchConfiguration } from "./configurations.js";
import type { BenchSettings, PointRun, RoundResult } from "./runner.js";
import { type DEFAULT_NOISE_LIMITS, isNoisy, median, relativeSpread } from "./stats.js";

export const REPORT_SCHEMA = "inference-guard-bench/1";
/** The rate issue 7's latency and memory targets are stated at. */
export const TARGET_RPS = 1000;
/** An open-loop point that delivered less than this share of its rate was saturated. */
const SATURATION_SHARE = 0.9;

type MedianFields =
  | "achievedRps"
  | "p50Ms"
  | "p99Ms"
  | "p999Ms"
  | "maxMs"
  | "errors"
  | "guardCpuUsPerRequest"
  | "envoyCpuUsPerRequest"
  | "guardRssMb";
const MEDIAN_FIELDS: readonly MedianFields[] = [
  "achievedRps",
  "p50Ms",
  "p99Ms",
  "p999Ms",
  "maxMs",
  "errors",
  "guardCpuUsPerRequest",
  "envoyCpuUsPerRequest",
  "guardRssMb",
];

export interface PointSummary {
  readonly key: string;
  /** Requested rate; null for the closed loop. */
  readonly targetRps: number | null;
  readonly runs: readonly PointRun[];
  /** Medians over runs; null where no run had the value (no guard, no successful request). */
  readonly median: Readonly<Record<MedianFields, number | null>>;
  /** (max − min) ÷ median over runs. */
  readonly spread: { readonly p50Ms: number; readonly achievedRps: number };
  readonly noisy: boolean;
  /** Open loop only: the stack (or the load generator) could not keep the requested rate. */
  readonly saturated: boolean;
  /** Some run repeated URIs, so a cache-miss configuration may have seen hits. */
  readonly urisWrapped: boolean;
}

export interface Headline {
  /** The open-loop rate the latency columns are taken at. */
  readonly rps: number | null;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly p999Ms: number | null;
  /** Latency minus the baseline configuration's, at the same rate. */
  readonly addedP50Ms: number | null;
  readonly addedP99Ms: number | null;
  readonly addedP999Ms: number | null;
  /** Closed-loop 2xx/s. */
  readonly maxRps: number | null;
  /** maxRps ÷ configuration a's maxRps. */
  readonly throughputRatio: number | null;
  readonly guardCpuUsPerRequest: number | null;
  readonly envoyCpuUsPerRequest: number | null;
  readonly guardRssMb: number | null;
  /** Largest VmHWM of the guard over the rounds. */
  readonly guardHwmMb: number | null;
  /** Non-2xx answers summed over every point and run. */
  readonly errors: number;
  readonly noisy: boolean;
}

export interface ConfigurationReport {
  readonly id: string;
  readonly title: string;
  readonly notes: string;
  readonly baseline: string;
  readonly rounds: readonly Omit<RoundResult, "points">[];
  readonly points: readonly PointSummary[];
  readonly headline: Headline;
  /** Where the guard's handler time went; null without a guard. */
  readonly stages: StageSummary | null;
}

/** Medians over the rounds, per request the guard saw (probe and warm-up included). */
export interface StageSummary {
  /** In the ext_proc message handlers (guard_extproc_message_seconds): stages and state machine. */
  readonly handlerUsPerRequest: number;
  readonly stages: readonly {
    readonly stage: string;
    readonly phase: string;
    readonly callsPerRequest: number;
    readonly usPerCall: number;
    readonly usPerRequest: number;
  }[];
  /** The drift monitor, from the rounds' CPU profiles (--cpu-prof); null when not profiled. */
  readonly driftUsPerResponse: number | null;
}

export interface TargetCheck {
  readonly name: string;
  readonly value: number | null;
  readonly limit: string;
  /** null when not measurable from this run (configuration missing or rate not measured). */
  readonly met: boolean | null;
  /**
   * The same measure for the peer doing the same ext_proc exchange (f for b, f_d for d), when it
   * ran: with the Go reference peer, which does no work, the protocol's own cost on this machine.
   */
  readonly peer: { readonly id: string; readonly value: number | null } | null;
}

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cpus: number;
  readonly memoryMb: number;
  readonly kernel: string;
  readonly node: string;
  readonly envoy: string;
  readonly h2load: string;
  readonly loadAverageStart: readonly number[];
  readonly loadAverageEnd: readonly number[];
}

export interface BenchReport {
  readonly schema: typeof REPORT_SCHEMA;
  readonly label: string;
  readonly command: string;
  readonly startedAt: string;
  readonly wallSeconds: number;
  readonly machine: MachineInfo;
  readonly settings: Omit<BenchSettings, "workDir" | "body" | "cpuProfileDir"> & {
    readonly requestBytes: number;
    readonly noiseLimits: typeof DEFAULT_NOISE_LIMITS;
  };
  readonly request: {
    readonly path: string;
    readonly headers: readonly string[];
    readonly bodyBytes: number;
    readonly responseBytes: number | null;
  };
  readonly configurations: readonly ConfigurationReport[];
  readonly targets: readonly TargetCheck[];
}

function medianOrNull(values: readonly (number | null)[]): number | null {
  const present = values.filter((value): value is number => value !== null && Number.isFinite(value));
  return present.length === 0 ? null : median(present);
}

export function summarisePoint(key: string, runs: readonly PointRun[]): PointSummary {
  const targetRps = key.startsWith("open@") ? Number(key.slice("open@".length)) : null;
  const medians = Object.fromEntries(
    MEDIAN_FIELDS.map((field) => [field, medianOrNull(runs.map((run) => run[field]))]),
  ) as Record<MedianFields, number | null>;
  const p50s = runs.map((run) => run.p50Ms);
  const throughputs = runs.map((run) => run.achievedRps);
  return {
    key,
    targetRps,
    runs,
    median: medians,
    spread: { p50Ms: relativeSpread(p50s), achievedRps: relativeSpread(throughputs) },
    noisy: isNoisy(p50s, throughputs),
    saturated: targetRps !== null && (medians.achievedRps ?? 0) < SATURATION_SHARE * targetRps,
    urisWrapped: runs.some((run) => run.urisWrapped),
  };
}

/** The measured rate closest to the target rate (all of them when the target was measured). */
export function headlineRate(rates: readonly number[]): number | null {
  let best: number | null = null;
  for (const rate of rates) if (best === null || Math.abs(rate - TARGET_RPS) < Math.abs(best - TARGET_RPS)) best = rate;
  return best;
}

function difference(value: number | null | undefined, base: number | null | undefined): number | null {
  return value === null || value === undefined || base === null || base === undefined ? null : value - base;
}

export function summariseStages(
  rounds: readonly Pick<RoundResult, "stageTimes" | "driftUsPerResponse">[],
): StageSummary | null {
  const times = rounds.flatMap((round) =>
    round.stageTimes === null || round.stageTimes.requests === 0 ? [] : [round.stageTimes],
  );
  if (times.length === 0) return null;
  const keys = [...new Set(times.flatMap((time) => time.stages.map((stage) => `${stage.stage}\u0000${stage.phase}`)))];
  const stages = keys.map((key) => {
    const [stage = "", phase = ""] = key.split("\u0000");
    const of = times.map((time) => ({
      requests: time.requests,
      found: time.stages.find((entry) => entry.stage === stage && entry.phase === phase),
    }));
    const calls = of.map(({ found, requests }) => (found?.calls ?? 0) / requests);
    const perRequest = of.map(({ found, requests }) => ((found?.seconds ?? 0) * 1e6) / requests);
    const perCall = of.flatMap(({ found }) =>
      found === undefined || found.calls === 0 ? [] : [(found.seconds * 1e6) / found.calls],
    );
    return {
      stage,
      phase,
      callsPerRequest: median(calls),
      usPerCall: perCall.length === 0 ? 0 : median(perCall),
      usPerRequest: median(perRequest),
    };
  });
  return {
    handlerUsPerRequest: median(times.map((time) => (time.handlerSeconds * 1e6) / time.requests)),
    stages: stages.sort((a, b) => b.usPerRequest - a.usPerRequest),
    driftUsPerResponse: medianOrNull(rounds.map((round) => round.driftUsPerResponse)),
  };
}

export function buildConfigurationReports(
  configurations: readonly BenchConfiguration[],
  rounds: readonly RoundResult[],
  rates: readonly number[],
): ConfigurationReport[] {
  const rate = headlineRate(rates);
  const rateKey = rate === null ? undefined : `open@${rate}`;
  const pointsOf = new Map<string, PointSummary[]>();
  for (const configuration of configurations) {
    const mine = rounds.filter((round) => round.configuration === configuration.id);
    const keys = [...new Set(mine.flatMap((round) => Object.keys(round.points)))];
    pointsOf.set(
      configuration.id,
      keys.map((key) =>
        summarisePoint(
          key,
          mine.flatMap((round) => (round.points[key] === undefined ? [] : [round.points[key]])),
        ),
      ),
    );
  }
  const at = (id: string, key: string | undefined): PointSummary | undefined =>
    pointsOf.get(id)?.find((point) => point.key === key);
  const floorMax = at("a", "closed")?.median.achievedRps ?? null;
  return configurations.map((configuration) => {
    const mine = rounds.filter((round) => round.configuration === configuration.id);
    const points = pointsOf.get(configuration.id) ?? [];
    const atRate = at(configuration.id, rateKey);
    const baseline = at(configuration.baseline, rateKey);
    const closed = at(configuration.id, "closed");
    const maxRps = closed?.median.achievedRps ?? null;
    const hwms = mine.map((round) => round.guardHwmMb).filter((value): value is number => value !== null);
    return {
      id: configuration.id,
      title: configuration.title,
      notes: configuration.notes,
      baseline: configuration.baseline,
      rounds: mine.map(({ points: _points, ...rest }) => rest),
      points,
      headline: {
        rps: rate,
        p50Ms: atRate?.median.p50Ms ?? null,
        p99Ms: atRate?.median.p99Ms ?? null,
        p999Ms: atRate?.median.p999Ms ?? null,
        addedP50Ms: difference(atRate?.median.p50Ms, baseline?.median.p50Ms),
        addedP99Ms: difference(atRate?.median.p99Ms, baseline?.median.p99Ms),
        addedP999Ms: difference(atRate?.median.p999Ms, baseline?.median.p999Ms),
        maxRps,
        throughputRatio: maxRps === null || floorMax === null || floorMax === 0 ? null : maxRps / floorMax,
        guardCpuUsPerRequest: atRate?.median.guardCpuUsPerRequest ?? null,
        envoyCpuUsPerRequest: atRate?.median.envoyCpuUsPerRequest ?? null,
        guardRssMb: atRate?.median.guardRssMb ?? null,
        guardHwmMb: hwms.length === 0 ? null : Math.max(...hwms),
        errors: points.reduce((sum, point) => sum + point.runs.reduce((runSum, run) => runSum + run.errors, 0), 0),
        noisy: points.some((point) => point.noisy),
      },
      stages: summariseStages(mine),
    };
  });
}

export function checkTargets(reports: readonly ConfigurationReport[]): TargetCheck[] {
  const headline = (id: string): Headline | undefined => reports.find((report) => report.id === id)?.headline;
  const atTarget = (id: string): Headline | undefined => {
    const found = headline(id);
    return found?.rps === TARGET_RPS ? found : undefined;
  };
  type Measure = (found: Headline | undefined) => number | null | undefined;
  const check = (
    name: string,
    measure: Measure,
    limit: string,
    met: (value: number) => boolean,
    configuration: string,
    peer?: string,
  ): TargetCheck => {
    const value = measure(atTarget(configuration));
    return {
      name,
      value: value ?? null,
      limit,
      met: value === null || value === undefined ? null : met(value),
      peer:
        peer === undefined || headline(peer) === undefined
          ? null
          : { id: peer, value: measure(atTarget(peer)) ?? null },
    };
  };
  const hit = atTarget("e");
  const miss = atTarget("e_upstream");
  const speedup = hit?.p50Ms && miss?.p50Ms ? miss.p50Ms / hit.p50Ms : null;
  const withoutRedis = atTarget("d")?.guardCpuUsPerRequest;
  const redisCpuRatio: Measure = (found) =>
    found?.guardCpuUsPerRequest != null && withoutRedis != null ? found.guardCpuUsPerRequest / withoutRedis : null;
  const addedP50: Measure = (found) => found?.addedP50Ms;
  const addedP99: Measure = (found) => found?.addedP99Ms;
  return [
    check("(b) added p50 at 1000 rps, ms", addedP50, "≤ 0.25", (value) => value <= 0.25, "b", "f"),
    check("(b) added p99 at 1000 rps, ms", addedP99, "≤ 1", (value) => value <= 1, "b", "f"),
    check("(d) added p50 at 1000 rps, ms", addedP50, "≤ 1", (value) => value <= 1, "d", "f_d"),
    check("(d) added p99 at 1000 rps, ms", addedP99, "≤ 3", (value) => value <= 3, "d", "f_d"),
    check(
      `(e) cache hit p50 speed-up over the ${"5 ms"} upstream call`,
      () => speedup,
      "≥ 5×",
      (value) => value >= 5,
      "e",
    ),
    check(
      "(d_redis) guard CPU per request with the shared Redis tier, × d's",
      redisCpuRatio,
      "≤ 1.05",
      (value) => value <= 1.05,
      "d_redis",
    ),
    check(
      "(d) guard RSS at 1000 rps, 64 MiB cache budget, MB",
      (found) => found?.guardRssMb,
      "≤ 150",
      (value) => value <= 150,
      "d",
    ),
  ];
}
