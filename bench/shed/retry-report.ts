// The retry scenarios' results: per set-up, scenario and repeat from the logical requests and the
// upstream's own counters, the worst run per metric over the repeats (issue 17: "report the worst
// run, not the best"), the issue's targets checked against it, and the tables.
import { percentile } from "../../src/util/percentile.js";
import { MAX_RETRIES, type WindowedSample } from "./clients.js";
import type { CompanionReport } from "./companions.js";
import { countBy, countOutcomes, round, type ShedReport, type Telemetry } from "./report.js";
import type { Sample } from "./traffic.js";
import {
  COMPANIONS,
  type Companion,
  type Priority,
  RETRY_POLICIES,
  type RetryPolicy,
  type RetryScenario,
  type Variant,
} from "./workload.js";

const RETRY_AFTER_BUCKET_MS = 250;

export function scenarioName(scenario: RetryScenario): string {
  const companion = scenario.companion === undefined ? "" : `+${scenario.companion}`;
  return `${scenario.policy}@${scenario.load}x${scenario.cpuHog === true ? "+hog" : ""}${companion}`;
}

/**
 * "immediate@4" (or "immediate@4x") → { policy: "immediate", load: 4 }; a "+hog" suffix adds the CPU
 * hog, a "+storm", "+spoof", "+tenants" or "+tenant10x" suffix its companion clients (companions.ts).
 */
export function parseScenario(text: string): RetryScenario {
  const match = /^(\w+)@(\d+(?:\.\d+)?)x?(\+hog)?(?:\+(\w+))?$/.exec(text.trim());
  const policy = match?.[1] as RetryPolicy | undefined;
  const companion = match?.[4] as Companion | undefined;
  if (
    match === null ||
    policy === undefined ||
    !RETRY_POLICIES.includes(policy) ||
    (companion !== undefined && !COMPANIONS.includes(companion))
  )
    throw new Error(
      `retry scenario "${text}": expected <${RETRY_POLICIES.join("|")}>@<load>[+hog][+<${COMPANIONS.join("|")}>], e.g. immediate@4+hog or backoff@1+storm`,
    );
  return {
    policy,
    load: Number(match[2]),
    ...(match[3] === undefined ? {} : { cpuHog: true }),
    ...(companion === undefined ? {} : { companion }),
  };
}

/** The whole `make bench-shed` report: the open-loop sweep and the retry scenarios of the same run. */
export interface ShedRunReport extends ShedReport {
  /**
   * Requests the guard classed from their source address over its whole set-up (all points and
   * runs), per class; null when no set-up had the guard.
   */
  readonly guardClasses: Readonly<Record<Priority, number>> | null;
  readonly retry: {
    /** Closed-loop users per scenario, the same in every set-up (sized from the first one's calibration). */
    readonly users: Readonly<Record<string, number>>;
    readonly worst: readonly RetryWorst[];
    readonly runs: readonly RetryRun[];
  };
}

/** What the model servers received during a run (demo /__demo/stats, both pools, after minus before). */
export interface UpstreamCounts {
  /** Model requests received: answered, abandoned by their client, or still in flight. */
  readonly attempts: number;
  /** Answers with status ≥ 500 and injected resets: the upstream's own failures. */
  readonly errors: number;
}

export interface RetryRun {
  readonly variant: Variant;
  readonly scenario: string;
  readonly policy: RetryPolicy;
  readonly load: number;
  readonly repeat: number;
  readonly users: number;
  readonly durationSeconds: number;
  /** Logical requests started within the window (each run to its end). */
  readonly logical: number;
  readonly succeeded: number;
  readonly failed: number;
  /** Succeeded ÷ logical requests (1 when there were none). */
  readonly successRate: number;
  /** Successful logical requests that ended within the window: goodput's numerator. */
  readonly succeededInWindow: number;
  readonly goodputPerSecond: number;
  /** Successful logical requests per second (ended within the window) ÷ the measured capacity in requests per second. */
  readonly goodput: number;
  /**
   * The same, counting only successes within the request's SLO from its first attempt (4 × its
   * unloaded work, at least 500 ms): a success after 10 s of queueing and retries is no goodput to
   * a user, and closed-loop users keep the server busy with those without protection.
   */
  readonly goodputWithinSlo: number;
  readonly critical: {
    readonly logical: number;
    readonly succeeded: number;
    readonly successRate: number;
    /** The last attempt's outcome of each failed critical request. */
    readonly failures: Readonly<Record<string, number>>;
    /** p99 of the successful critical requests, from their first attempt. */
    readonly successP99Ms: number | null;
  };
  /** Attempts the clients sent (through Envoy). */
  readonly clientAttempts: number;
  /** Attempts the model servers received. */
  readonly upstreamAttempts: number;
  /** Upstream attempts ÷ logical requests: the retry storm as the model sees it. */
  readonly amplification: number;
  readonly clientAttemptsPerLogical: number;
  /** Attempts answered 429/503 by the protection layer (guard or Envoy filter), not the model. */
  readonly shedAttempts: number;
  /** Shed attempts ÷ client attempts. */
  readonly shedShare: number;
  /** 5xx attempts not answered by the model: with the guard, its own (and the timeouts it set Envoy). */
  readonly own5xx: number;
  /** Attempts answered 503 because the guard's circuit was open. */
  readonly circuitOpenAnswers: number;
  /** Attempts answered 503 by the protection layer (shed or circuit open), not by the model. */
  readonly protection503: number;
  readonly upstream5xx: number;
  /** Shed attempts per class: who pays for the shedding. */
  readonly shedByClass: Readonly<Record<string, number>>;
  readonly successP50Ms: number | null;
  /** p99 of successful logical requests, from their first attempt (backoff waits included). */
  readonly successP99Ms: number | null;
  /** Every attempt by status and shed reason, e.g. "200", "429 shed.overload", "0" (client timeout). */
  readonly attemptOutcomes: Readonly<Record<string, number>>;
  /** The waits the clients were asked for (retry-after-ms, else Retry-After), in 250 ms buckets, with their counts. */
  readonly retryAfterMs: Readonly<Record<string, number>>;
  readonly telemetry: Telemetry;
  /** The scenario's companion clients, counted apart from the users above; absent without one. */
  readonly companion?: CompanionReport;
}

export interface RetryRunInput {
  readonly variant: Variant;
  readonly scenario: RetryScenario;
  readonly repeat: number;
  readonly users: number;
  readonly durationMs: number;
  readonly samples: readonly WindowedSample[];
  readonly upstream: UpstreamCounts;
  readonly capacityPerSecond: number;
  readonly telemetry: Telemetry;
  readonly companion?: CompanionReport;
}

function share(part: number, whole: number, empty: number): number {
  return round(whole === 0 ? empty : part / whole, 4) ?? empty;
}

export function summariseRetryRun(input: RetryRunInput): RetryRun {
  const { samples, upstream } = input;
  const seconds = input.durationMs / 1000;
  const attempts = samples.flatMap((sample) => sample.attempts);
  const succeeded = samples.filter((sample) => sample.ok);
  const critical = samples.filter((sample) => sample.priority === "critical");
  const criticalSucceeded = critical.filter((sample) => sample.ok).length;
  const inWindow = (sample: WindowedSample): boolean => sample.endedInWindow;
  const succeededInWindow = succeeded.filter(inWindow).length;
  const goodInWindow = samples.filter((sample) => sample.good && inWindow(sample)).length;
  const retryAfter = countBy(attempts, ({ retryAfterMs }) =>
    retryAfterMs === null ? undefined : `≤${Math.ceil(retryAfterMs / RETRY_AFTER_BUCKET_MS) * RETRY_AFTER_BUCKET_MS}`,
  );
  const shed = attempts.filter((attempt) => attempt.shed);
  const shedAttempts = shed.length;
  const shedByClass = countBy(shed, (attempt) => attempt.priority);
  const successMs = succeeded.map((sample) => sample.ms);
  const criticalMs = critical.filter((sample) => sample.ok).map((sample) => sample.ms);
  return {
    variant: input.variant,
    scenario: scenarioName(input.scenario),
    policy: input.scenario.policy,
    load: input.scenario.load,
    repeat: input.repeat,
    users: input.users,
    durationSeconds: seconds,
    logical: samples.length,
    succeeded: succeeded.length,
    failed: samples.length - succeeded.length,
    successRate: share(succeeded.length, samples.length, 1),
    succeededInWindow,
    goodputPerSecond: round(succeededInWindow / seconds, 2) ?? 0,
    goodput: round(succeededInWindow / seconds / input.capacityPerSecond, 3) ?? 0,
    goodputWithinSlo: round(goodInWindow / seconds / input.capacityPerSecond, 3) ?? 0,
    critical: {
      logical: critical.length,
      succeeded: criticalSucceeded,
      successRate: share(criticalSucceeded, critical.length, 1),
      failures: countOutcomes(critical.filter((sample) => !sample.ok).flatMap((sample) => sample.attempts.slice(-1))),
      successP99Ms: round(percentile(criticalMs, 0.99)),
    },
    clientAttempts: attempts.length,
    upstreamAttempts: upstream.attempts,
    amplification: share(upstream.attempts, samples.length, 0),
    clientAttemptsPerLogical: share(attempts.length, samples.length, 0),
    shedAttempts,
    shedShare: share(shedAttempts, attempts.length, 0),
    shedByClass,
    own5xx: attempts.filter((attempt) => attempt.status >= 500 && !attempt.fromModel).length,
    circuitOpenAnswers: circuitOpenAnswers(attempts),
    protection503: shed.filter((attempt) => attempt.status === 503).length,
    upstream5xx: upstream.errors,
    successP50Ms: round(percentile(successMs, 0.5)),
    successP99Ms: round(percentile(successMs, 0.99)),
    attemptOutcomes: countOutcomes(attempts),
    retryAfterMs: retryAfter,
    telemetry: input.telemetry,
    ...(input.companion === undefined ? {} : { companion: input.companion }),
  };
}

export function circuitOpenAnswers(attempts: readonly Sample[]): number {
  return attempts.filter((attempt) => attempt.outcome.endsWith("circuit_open")).length;
}

/** Per set-up and scenario, each metric at its worst over the repeats (lowest goodput, highest p99, …). */
export interface RetryWorst {
  readonly variant: Variant;
  readonly scenario: string;
  readonly policy: RetryPolicy;
  readonly load: number;
  readonly runs: number;
  readonly goodput: number;
  readonly goodputWithinSlo: number;
  readonly criticalSuccessRate: number;
  readonly amplification: number;
  readonly own5xx: number;
  readonly circuitOpenAnswers: number;
  /** With upstream5xx: "the circuit never opens while the upstream returns no 5xx" needs both. */
  readonly upstream5xx: number;
  readonly shedShare: number;
  /** null only when no run had a successful request. */
  readonly successP99Ms: number | null;
}

function highest(values: readonly (number | null)[]): number | null {
  const present = values.filter((value): value is number => value !== null);
  return present.length === 0 ? null : Math.max(...present);
}

export function worstRuns(runs: readonly RetryRun[]): RetryWorst[] {
  const groups = new Map<string, RetryRun[]>();
  for (const run of runs) {
    const key = `${run.variant} ${run.scenario}`;
    groups.set(key, [...(groups.get(key) ?? []), run]);
  }
  return [...groups.values()].map((group) => {
    const [first] = group as [RetryRun, ...RetryRun[]];
    const all = <T>(pick: (run: RetryRun) => T): T[] => group.map(pick);
    return {
      variant: first.variant,
      scenario: first.scenario,
      policy: first.policy,
      load: first.load,
      runs: group.length,
      goodput: Math.min(...all((run) => run.goodput)),
      goodputWithinSlo: Math.min(...all((run) => run.goodputWithinSlo)),
      criticalSuccessRate: Math.min(...all((run) => run.critical.successRate)),
      amplification: Math.max(...all((run) => run.amplification)),
      own5xx: Math.max(...all((run) => run.own5xx)),
      circuitOpenAnswers: Math.max(...all((run) => run.circuitOpenAnswers)),
      upstream5xx: Math.max(...all((run) => run.upstream5xx)),
      shedShare: Math.max(...all((run) => run.shedShare)),
      successP99Ms: highest(all((run) => run.successP99Ms)),
    };
  });
}

/**
 * Issue 17's evaluation targets that these scenarios can show, on the worst run: at ≥ 2× goodput
 * ≥ 0.9 and critical success ≥ 99.9%; with immediate retries amplification ≤ 1.2 and no circuit
 * opening while the upstream returned no 5xx; at 1× shed share ≤ 2%.
 */
export function retryTargets(worst: RetryWorst): { readonly met: boolean; readonly text: string }[] {
  const targets: { met: boolean; text: string }[] = [];
  const percent = (value: number, digits = 1): string => `${(value * 100).toFixed(digits)}%`;
  if (worst.load >= 2) {
    targets.push(
      { met: worst.goodput >= 0.9, text: `goodput ≥ 0.9 of capacity: ${worst.goodput}` },
      {
        met: worst.criticalSuccessRate >= 0.999,
        text: `critical success ≥ 99.9%: ${percent(worst.criticalSuccessRate, 2)}`,
      },
    );
  }
  if (worst.policy === "immediate") {
    targets.push({
      met: worst.amplification <= 1.2,
      text: `upstream attempts per logical request ≤ 1.2: ${worst.amplification}`,
    });
    if (worst.upstream5xx === 0)
      targets.push({
        met: worst.circuitOpenAnswers === 0,
        text: `circuit never opens (upstream returned no 5xx): ${worst.circuitOpenAnswers} circuit-open answers`,
      });
  }
  if (worst.load === 1)
    targets.push({ met: worst.shedShare <= 0.02, text: `shed share ≤ 2%: ${percent(worst.shedShare)}` });
  return targets;
}

const COLUMNS = [
  "set-up",
  "scenario",
  "runs",
  "goodput",
  "within SLO",
  "critical success",
  "amplification",
  "own 5xx",
  "circuit-open answers",
  "upstream 5xx",
  "shed share",
  "p99 ms",
] as const;

function cells(worst: RetryWorst): string[] {
  return [
    worst.variant,
    worst.scenario,
    String(worst.runs),
    worst.goodput.toFixed(2),
    worst.goodputWithinSlo.toFixed(2),
    `${(worst.criticalSuccessRate * 100).toFixed(1)}%`,
    worst.amplification.toFixed(2),
    String(worst.own5xx),
    String(worst.circuitOpenAnswers),
    String(worst.upstream5xx),
    `${(worst.shedShare * 100).toFixed(1)}%`,
    worst.successP99Ms === null ? "-" : String(Math.round(worst.successP99Ms)),
  ];
}

/** A fixed-width table of the worst runs, one line per set-up and scenario. */
export function formatRetryTable(worst: readonly RetryWorst[]): string {
  const rows = [[...COLUMNS], ...worst.map(cells)];
  const widths = COLUMNS.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? "").length)));
  const line = (row: readonly string[]): string =>
    row
      .map((cell, column) => (column < 2 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0)))
      .join("  ");
  const [header, ...body] = rows.map(line);
  return [header, "-".repeat(header?.length ?? 0), ...body].join("\n");
}

/** The same table in Markdown, for the report's .md and docs/bench.md. */
export function retryMarkdownTable(worst: readonly RetryWorst[]): string {
  const row = (values: readonly string[]): string => `| ${values.join(" | ")} |`;
  return [row(COLUMNS), row(COLUMNS.map(() => "---")), ...worst.map((item) => row(cells(item)))].join("\n");
}

/** Consistency of one run's bookkeeping; empty when it adds up (the e2e test and the CLI check it). */
export function retryRunInconsistencies(run: RetryRun): string[] {
  const problems: string[] = [];
  const outcomes = Object.values(run.attemptOutcomes).reduce((sum, count) => sum + count, 0);
  if (run.succeeded + run.failed !== run.logical) problems.push("succeeded + failed ≠ logical requests");
  if (run.succeededInWindow > run.succeeded) problems.push("more successes within the window than in all");
  if (run.goodputWithinSlo > run.goodput) problems.push("more goodput within the SLO than in all");
  if (outcomes !== run.clientAttempts) problems.push("attempt outcomes do not sum to the attempts sent");
  if (run.clientAttempts < run.logical) problems.push("fewer attempts than logical requests");
  const retries = run.policy === "none" ? 0 : MAX_RETRIES;
  if (run.clientAttempts > run.logical * (1 + retries)) problems.push(`more than ${retries} retries per request`);
  if (run.upstreamAttempts > run.clientAttempts) problems.push("the upstream received more attempts than were sent");
  if (run.shedAttempts > run.clientAttempts || run.own5xx > run.clientAttempts)
    problems.push("more shed or 5xx answers than attempts");
  if (run.critical.succeeded > run.critical.logical || run.critical.logical > run.logical)
    problems.push("critical counts exceed their totals");
  return problems;
}
