// Issue 17's scenarios with clients beside the plain closed-loop users, run in the same stack:
// - storm: as many users again send to a second pool whose model answers 500 to everything;
// - spoof: users claiming x-guard-priority: critical from standard's address;
// - tenants / tenant10x: the users as two tenants within their token budget (/ and a third at 10×
//   its budget), the guard's chat route given routes[].budget for the run.
// What the companions get is counted apart from the users, and the issue's targets compare runs.
import { countOutcomes } from "./report.js";
import type { Sample } from "./traffic.js";
import {
  type BenchRequest,
  COMPANIONS,
  type Companion,
  type RetryPolicy,
  type RetryScenario,
  type Variant,
} from "./workload.js";

/** The storm pool's route: the guard's sentiment route (its own admission domain and circuit). */
export const STORM_PATH = "/v1/predict/sentiment";
/**
 * The heavy tenant starts a minute and a bit ahead: in its first minute a tenant at 10× gets the
 * whole minute's budget within seconds, faster than its completions are counted, which is a
 * burst, not the steady state of a tenant over budget (measured with a 10 s lead: the other
 * tenants' p99 0.9 → 6.2 s, bench/results/shed-2026-12-07-companions.json).
 */
const HEAVY_TENANT_LEAD_MS = 70_000;
/** Light tenants use half their budget; the heavy one is offered 10× it. */
const LIGHT_BUDGET_USE = 0.5;
const HEAVY_BUDGET_MULTIPLE = 10;
/** "Unchanged within noise": success at most 0.1 points lower, p99 at most 25% higher than the run without. */
const SUCCESS_NOISE = 0.001;
const P99_NOISE = 1.25;

/** Set-ups a companion means something in: no protection has no classes and no budgets. */
export function runsIn(scenario: RetryScenario, variant: Variant): boolean {
  return scenario.companion === undefined || scenario.companion === "storm" || variant === "guard";
}

/** Envoy sends the storm route to the second demo process (model_heavy), so the pools share no model. */
export function stormRoute(yaml: string): string {
  const fallback = /^(\s*)- match: \{ prefix: "\/" \}\n/m;
  if (!fallback.test(yaml)) throw new Error("envoy config: no catch-all route to put the storm route before");
  return yaml.replace(fallback, `$1- match: { prefix: "${STORM_PATH}" }\n$1  route: { cluster: model_heavy }\n$&`);
}

/** The guard config with the chat route's per-tenant token budget, or without any budget. */
export function withChatBudget(
  config: Readonly<Record<string, unknown>>,
  tokensPerMinute: number | undefined,
): Record<string, unknown> {
  const routes = (config.routes as Record<string, unknown>[]).map((route) => {
    if (route.name !== "chat") return route;
    const { budget: _budget, ...rest } = route;
    return tokensPerMinute === undefined ? rest : { ...rest, budget: { enabled: true, tokensPerMinute } };
  });
  return { ...config, routes };
}

/** Closed-loop users sharing a path, a retry policy and headers. */
export interface ClientGroup {
  readonly path: string | undefined;
  readonly users: number;
  readonly policy: RetryPolicy;
  readonly headers: Readonly<Record<string, string>>;
  readonly next: (index: number) => BenchRequest;
  /** How long before the measured window the group starts. */
  readonly leadMs: number;
}

export interface CompanionTraffic {
  /** The users whose requests the run's metrics are about. */
  readonly main: readonly ClientGroup[];
  readonly side: ClientGroup | undefined;
  /** The chat route's per-tenant budget for the run (tenant scenarios). */
  readonly tokensPerMinute: number | undefined;
}

export interface CompanionInput {
  readonly users: number;
  readonly capacityPerSecond: number;
  /** Estimated tokens (prompt and completion) of the mean request. */
  readonly tokensPerRequest: number;
  readonly criticalShare: number;
  readonly usersFor: (load: number) => number;
  readonly next: (index: number) => BenchRequest;
  /** Another stream of requests, for the companion. */
  readonly sideNext: (index: number) => BenchRequest;
}

const tenant = (name: string): Record<string, string> => ({ authorization: `Bearer ${name}` });

/** The tokens a request is expected to count: its prompt (~4 bytes a token) and its output budget. */
export function estimatedTokens(request: BenchRequest): number {
  const body = JSON.parse(request.body) as { max_tokens?: number };
  return Buffer.byteLength(request.body) / 4 + (body.max_tokens ?? 0);
}

export function companionTraffic(scenario: RetryScenario, input: CompanionInput): CompanionTraffic {
  const plain: ClientGroup = {
    path: undefined,
    users: input.users,
    policy: scenario.policy,
    headers: {},
    next: input.next,
    leadMs: 0,
  };
  const standard = (request: BenchRequest): BenchRequest => ({ ...request, priority: "standard" });
  switch (scenario.companion) {
    case undefined:
      return { main: [plain], side: undefined, tokensPerMinute: undefined };
    case "storm":
      return {
        main: [plain],
        side: {
          ...plain,
          path: STORM_PATH,
          headers: { "x-demo-status": "500" },
          next: (index) => ({
            ...standard(input.sideNext(index)),
            body: JSON.stringify({ text: `storm ${index}` }),
          }),
        },
        tokensPerMinute: undefined,
      };
    case "spoof":
      return {
        main: [plain],
        // As many users as the real critical ones: believed, they would double critical's load.
        side: {
          ...plain,
          users: Math.max(1, Math.round(input.users * input.criticalShare)),
          headers: { "x-guard-priority": "critical" },
          next: (index) => standard(input.sideNext(index)),
        },
        tokensPerMinute: undefined,
      };
    default: {
      // Each light tenant offers half the scenario's load; the budget is twice that in tokens.
      const lightTokensPerMinute = (scenario.load / 2) * input.capacityPerSecond * input.tokensPerRequest * 60;
      const tokensPerMinute = Math.round(lightTokensPerMinute / LIGHT_BUDGET_USE);
      const half = Math.max(1, Math.round(input.users / 2));
      const lights = ["tenant-a", "tenant-b"].map((name, group) => ({
        ...plain,
        users: half,
        headers: tenant(name),
        // Two interleaved halves of one stream: each tenant its own requests.
        next: (index: number) => input.next(2 * index + group),
      }));
      // The budget in requests per second is load/2 ÷ LIGHT_BUDGET_USE of capacity.
      const heavyLoad = (HEAVY_BUDGET_MULTIPLE * scenario.load) / 2 / LIGHT_BUDGET_USE;
      return {
        main: lights,
        // A client ignoring its budget: one attempt per request, the next one after thinking.
        side:
          scenario.companion === "tenants"
            ? undefined
            : {
                ...plain,
                users: input.usersFor(heavyLoad),
                policy: "none",
                headers: tenant("tenant-heavy"),
                next: input.sideNext,
                leadMs: HEAVY_TENANT_LEAD_MS,
              },
        tokensPerMinute,
      };
    }
  }
}

/** OpenAI's reset duration ("20ms", "3s", "1m5s") as the range of milliseconds it was rounded up from. */
function resetRangeMs(text: string): readonly [number, number] | null {
  const ms = /^(\d+)ms$/.exec(text);
  if (ms !== null) return [Math.max(0, Number(ms[1]) - 1), Number(ms[1])];
  const seconds = /^(?:(\d+)m)?(\d+)s$/.exec(text);
  if (seconds === null) return null;
  const total = Number(seconds[1] ?? 0) * 60 + Number(seconds[2]);
  return [(total - 1) * 1_000, total * 1_000];
}

/**
 * Why a budget answer's waits disagree, or null: retry-after-ms is the reset time (at least a
 * second), retry-after is it in whole seconds rounded up, x-ratelimit-reset-tokens the reset time.
 */
export function budgetHeaderProblem(sample: Sample): string | null {
  const headers = sample.budgetHeaders;
  if (headers === null) return null;
  const { retryAfter, retryAfterMs, resetTokens } = headers;
  const waitMs = Number(retryAfterMs);
  if (retryAfterMs === null || !Number.isFinite(waitMs)) return `retry-after-ms ${retryAfterMs}`;
  if (retryAfter !== String(Math.ceil(waitMs / 1_000)))
    return `retry-after ${retryAfter} is not retry-after-ms ${retryAfterMs} in seconds`;
  const range = resetTokens === null ? null : resetRangeMs(resetTokens);
  if (range === null) return `x-ratelimit-reset-tokens ${resetTokens}`;
  const [low, high] = range.map((ms) => Math.max(1_000, ms)) as [number, number];
  if (waitMs < low || waitMs > high)
    return `retry-after-ms ${retryAfterMs} outside x-ratelimit-reset-tokens ${resetTokens} (at least 1 s)`;
  return null;
}

/** The companion clients of one run. */
export interface CompanionReport {
  readonly companion: Companion;
  readonly users: number;
  readonly policy: RetryPolicy;
  readonly logical: number;
  readonly succeeded: number;
  readonly attempts: number;
  readonly circuitOpenAnswers: number;
  /** The chat route's per-tenant budget during the run (tenant scenarios). */
  readonly tokensPerMinute: number | null;
  /** What the companion offered, in estimated tokens, as a multiple of that budget. */
  readonly offeredBudgetMultiple: number | null;
  readonly budgetAnswers: number;
  /** Budget answers whose retry-after, retry-after-ms and x-ratelimit-reset-tokens disagree, and the first few. */
  readonly budgetHeaderProblems: number;
  readonly budgetHeaderExamples: readonly string[];
  /** Every attempt by status and guard reason (spoof: shed like standard, or kept like critical?). */
  readonly attemptOutcomes: Readonly<Record<string, number>>;
}

export interface CompanionSamples {
  readonly companion: Companion;
  readonly group: ClientGroup;
  readonly attempts: readonly Sample[];
  readonly logical: number;
  readonly succeeded: number;
  readonly durationMs: number;
  readonly tokensPerMinute: number | undefined;
  readonly offeredTokens: number;
}

export function summariseCompanion(input: CompanionSamples): CompanionReport {
  const { attempts, tokensPerMinute } = input;
  const problems = attempts.map(budgetHeaderProblem).filter((problem): problem is string => problem !== null);
  const outcomes = countOutcomes(attempts);
  const minutes = input.durationMs / 60_000;
  return {
    companion: input.companion,
    users: input.group.users,
    policy: input.group.policy,
    logical: input.logical,
    succeeded: input.succeeded,
    attempts: attempts.length,
    circuitOpenAnswers: attempts.filter((attempt) => attempt.outcome.endsWith("circuit_open")).length,
    tokensPerMinute: tokensPerMinute ?? null,
    offeredBudgetMultiple:
      tokensPerMinute === undefined ? null : Math.round((input.offeredTokens / minutes / tokensPerMinute) * 10) / 10,
    budgetAnswers: attempts.filter((attempt) => attempt.budgetHeaders !== null).length,
    budgetHeaderProblems: problems.length,
    budgetHeaderExamples: problems.slice(0, 3),
    attemptOutcomes: outcomes,
  };
}

/** What the companion targets read of a run (a RetryRun has all of it). */
export interface CompanionRun {
  readonly variant: Variant;
  readonly scenario: string;
  readonly successRate: number;
  readonly successP99Ms: number | null;
  readonly protection503: number;
  readonly critical: { readonly successRate: number; readonly successP99Ms: number | null };
  readonly companion?: CompanionReport;
}

interface Comparison {
  readonly success: number;
  readonly p99: number | null;
}

const worstOf = (runs: readonly CompanionRun[], pick: (run: CompanionRun) => Comparison): Comparison => {
  const picked = runs.map(pick);
  const p99s = picked.map((item) => item.p99).filter((value): value is number => value !== null);
  return {
    success: Math.min(...picked.map((item) => item.success)),
    p99: p99s.length === 0 ? null : Math.max(...p99s),
  };
};

const percent = (value: number): string => `${(value * 100).toFixed(2)}%`;
const verdict = (ok: boolean): string => (ok ? "met   " : "MISSED");

/** With against without the companion: success no more than 0.1 points lower, p99 no more than 25% higher. */
function unchanged(label: string, withIt: Comparison, without: Comparison): string[] {
  const p99Ok = withIt.p99 !== null && without.p99 !== null && withIt.p99 <= P99_NOISE * without.p99;
  return [
    `${verdict(withIt.success >= without.success - SUCCESS_NOISE)} ${label} success unchanged (≥ ${percent(without.success - SUCCESS_NOISE)}): ${percent(withIt.success)} vs ${percent(without.success)} without`,
    `${verdict(p99Ok)} ${label} p99 unchanged (≤ ${P99_NOISE}× ${without.p99} ms): ${withIt.p99} ms`,
  ];
}

/** The scenario a companion scenario is compared with: the same users without the spoofer, without the heavy tenant. */
export function baselineOf(name: string): string | undefined {
  if (name.endsWith("+spoof")) return name.slice(0, -"+spoof".length);
  if (name.endsWith("+tenant10x")) return name.replace(/\+tenant10x$/, "+tenants");
  return undefined;
}

/** The scenarios of a run the companion table shows: those with a companion, and their baselines. */
export function companionScenarios(names: readonly string[]): string[] {
  const withCompanion = names.filter((name) => COMPANIONS.some((companion) => name.endsWith(`+${companion}`)));
  const baselines = withCompanion.map(baselineOf).filter((name): name is string => name !== undefined);
  return names.filter((name) => withCompanion.includes(name) || baselines.includes(name));
}

/** The companion scenarios' targets on the guard's runs, each against its worst run. */
export function companionTargets(runs: readonly CompanionRun[]): string[] {
  const lines: string[] = [];
  const guard = runs.filter((run) => run.variant === "guard");
  const scenarios = [...new Set(guard.map((run) => run.scenario))];
  const of = (name: string): CompanionRun[] => guard.filter((run) => run.scenario === name);
  for (const name of scenarios) {
    const group = of(name);
    const companion = group[0]?.companion?.companion;
    const baseline = of(baselineOf(name) ?? "");
    const tag = `${name} (worst of ${group.length})`;
    const sides = group.map((run) => run.companion).filter((side) => side !== undefined);
    if (companion === "storm") {
      const healthy = worstOf(group, (run) => ({ success: run.successRate, p99: run.successP99Ms }));
      lines.push(
        `${verdict(healthy.success >= 0.999)} ${tag} healthy pool success ≥ 99.9%: ${percent(healthy.success)}`,
        `${verdict(group.every((run) => run.protection503 === 0))} ${tag} guard's 503s on the healthy pool = 0: ${Math.max(...group.map((run) => run.protection503))}`,
        `       ${tag} (info) storm pool circuit-open answers per run: ${sides.map((side) => `${side.circuitOpenAnswers}/${side.attempts}`).join(", ")}`,
      );
    }
    if (companion === "spoof" && baseline.length > 0) {
      const pick = (run: CompanionRun): Comparison => ({
        success: run.critical.successRate,
        p99: run.critical.successP99Ms,
      });
      lines.push(...unchanged(`${tag} real critical`, worstOf(group, pick), worstOf(baseline, pick)));
    }
    if (companion === "tenant10x") {
      if (baseline.length > 0) {
        const pick = (run: CompanionRun): Comparison => ({ success: run.successRate, p99: run.successP99Ms });
        lines.push(...unchanged(`${tag} other tenants'`, worstOf(group, pick), worstOf(baseline, pick)));
      }
      const answers = sides.reduce((sum, side) => sum + side.budgetAnswers, 0);
      const problems = sides.reduce((sum, side) => sum + side.budgetHeaderProblems, 0);
      lines.push(
        `${verdict(sides.every((side) => side.budgetAnswers > 0))} ${tag} heavy tenant's excess answered 429 budget.tokens: ${sides.map((side) => `${side.budgetAnswers}/${side.attempts} (offered ${side.offeredBudgetMultiple}× budget)`).join(", ")}`,
        `${verdict(answers > 0 && problems === 0)} ${tag} retry-after, retry-after-ms and x-ratelimit-reset-tokens consistent: ${answers - problems}/${answers}${problems > 0 ? ` (${sides.flatMap((side) => side.budgetHeaderExamples).join("; ")})` : ""}`,
      );
    }
  }
  return lines;
}

const COLUMNS = [
  "set-up",
  "scenario",
  "runs",
  "success",
  "p99 ms",
  "critical success",
  "critical p99 ms",
  "protection 503s",
  "companion",
  "companion success",
  "circuit-open",
  "budget 429s",
  "offered × budget",
] as const;

/** One Markdown row per set-up and scenario with a companion (or a baseline of one): each cell its worst run. */
export function companionMarkdownTable(runs: readonly CompanionRun[], scenarios: readonly string[]): string {
  const row = (values: readonly string[]): string => `| ${values.join(" | ")} |`;
  const keys = [...new Set(runs.map((run) => `${run.variant} ${run.scenario}`))];
  const rows = keys
    .map((key) => runs.filter((run) => `${run.variant} ${run.scenario}` === key))
    .filter((group) => scenarios.includes(group[0]?.scenario ?? ""))
    .map((group) => {
      const [first] = group as [CompanionRun, ...CompanionRun[]];
      const all = worstOf(group, (run) => ({ success: run.successRate, p99: run.successP99Ms }));
      const critical = worstOf(group, (run) => ({
        success: run.critical.successRate,
        p99: run.critical.successP99Ms,
      }));
      const sides = group.map((run) => run.companion).filter((side) => side !== undefined);
      const sideCell = (pick: (side: CompanionReport) => string): string =>
        sides.length === 0 ? "-" : sides.map(pick).join(", ");
      return row([
        first.variant,
        first.scenario,
        String(group.length),
        percent(all.success),
        String(all.p99 ?? "-"),
        percent(critical.success),
        String(critical.p99 ?? "-"),
        String(Math.max(...group.map((run) => run.protection503))),
        sideCell((side) => `${side.companion} ×${side.users}`),
        sideCell((side) => `${side.succeeded}/${side.logical}`),
        sideCell((side) => String(side.circuitOpenAnswers)),
        sideCell((side) => String(side.budgetAnswers)),
        sideCell((side) => String(side.offeredBudgetMultiple ?? "-")),
      ]);
    });
  return [row(COLUMNS), row(COLUMNS.map(() => "---")), ...rows].join("\n");
}
