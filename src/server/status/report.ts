// The status page's data: GET /api/status, computed from the guard's own registry (the same numbers
// Prometheus scrapes, so the page and the dashboards never disagree) plus the contracts stage's
// recent violation examples, the drift monitor's report and the canary stage's rollouts. Request rates are deltas between
// samples the report takes itself.
import type { Registry } from "prom-client";
import type { CanaryRouteStatus } from "../../pipeline/canary/stage.js";
import type { RecentViolations } from "../../pipeline/contracts/recent.js";
import type { FieldDrift, RouteDrift, VersionDrift } from "../../pipeline/drift/compare.js";

export interface StatusSource {
  readonly registry: () => Registry;
  /** Undefined when no route binds a contract. */
  readonly recentViolations: () => RecentViolations | undefined;
  /** Undefined when no route binds a contract. */
  readonly drift: () => DriftSource | undefined;
  /** The routes in rollout: pools, weights, candidates' health and quarantines (the canary stage's status). */
  readonly rollouts: () => readonly CanaryRouteStatus[];
  /** Configured route names, so a route without traffic is still listed. */
  readonly routes: () => readonly string[];
  readonly version: string;
  /** Monotonic ms. */
  readonly now: () => number;
}

/** What the status report reads of the drift monitor. */
export interface DriftSource {
  report(): readonly RouteDrift[];
  /** Drifting fields listed per version (drift.topFields). */
  readonly topFields: number;
}

export interface ShedCount {
  readonly reason: string;
  readonly priority: string;
  readonly count: number;
}

export interface CostHistogram {
  readonly count: number;
  readonly sum: number;
  /** Non-cumulative: requests whose cost fell in (previous le, le]; the last le is "+Inf". */
  readonly buckets: readonly { readonly le: string; readonly count: number }[];
}

export interface RouteStatus {
  readonly route: string;
  readonly requests: number;
  /** Requests per second over `rateWindowSeconds`; null until two samples a second apart exist. */
  readonly ratePerSecond: number | null;
  readonly answeredByGuard: number;
  readonly shed: number;
  readonly sheds: readonly ShedCount[];
  /** Null when the route has no cache traffic. */
  readonly cache: { readonly hits: number; readonly misses: number; readonly hitRatio: number } | null;
  readonly cost: CostHistogram | null;
}

export interface PoolStatus {
  readonly pool: string;
  readonly circuit: "closed" | "half_open" | "open";
  readonly inflightCost: number;
  readonly limitCost: number;
  readonly queued: number;
}

export interface RuleStatus {
  readonly rule: string;
  readonly count: number;
  /** The latest violation of this rule by this version: where and what, never the body. */
  readonly example: { readonly field: string; readonly message: string; readonly ageSeconds: number } | null;
}

export interface ContractStatus {
  readonly contract: string;
  readonly modelVersion: string;
  readonly checked: number;
  readonly violated: number;
  readonly violationRatio: number;
  /** Most frequent rules first, at most TOP_RULES. */
  readonly topRules: readonly RuleStatus[];
}

/** A drifting field: the methods past their thresholds and every score of it. */
export type DriftFieldStatus = Pick<FieldDrift, "field" | "drifting" | "scores">;

export type DriftVersionStatus = Pick<VersionDrift, "samples" | "verdict"> & {
  readonly modelVersion: string;
  /** The output fields that drift, worst first, at most drift.topFields. */
  readonly topFields: readonly DriftFieldStatus[];
  /** The input fields that drift (prompt tokens, cost, tier), worst first. */
  readonly inputDrift: readonly DriftFieldStatus[];
};

/** Per route bound to a contract: its baseline and every version side by side with it. */
export type DriftStatus = Pick<RouteDrift, "route" | "contract" | "baseline" | "pinned"> & {
  readonly versions: readonly DriftVersionStatus[];
};

export interface StatusReport {
  readonly version: string;
  readonly uptimeSeconds: number;
  readonly rateWindowSeconds: number | null;
  readonly routes: readonly RouteStatus[];
  readonly pools: readonly PoolStatus[];
  readonly contracts: readonly ContractStatus[];
  readonly drift: readonly DriftStatus[];
  /** Per route in rollout: the stable pool and each candidate's weight, share, counts and quarantine. */
  readonly rollouts: readonly CanaryRouteStatus[];
  readonly reloads: { readonly success: number; readonly failure: number };
  /**
   * What the Envoy sent on without the guard (guard_envoy_unguarded_total, by reason), and its
   * share of everything through the ext_proc filter; null without envoy.adminUrl.
   */
  readonly unguarded: UnguardedStatus | null;
}

export interface UnguardedStatus {
  readonly requests: number;
  /** Unguarded ÷ (unguarded + exchanges the guard took). */
  readonly share: number;
  readonly byReason: Readonly<Record<string, number>>;
}

/** Rates cover about the last minute; older samples are dropped. */
const RATE_WINDOW_MS = 60_000;
/** Samples closer together than this are not kept (many open pages poll often). */
const MIN_SAMPLE_GAP_MS = 1_000;
const TOP_RULES = 3;
const CIRCUIT_STATES = ["closed", "half_open", "open"] as const;
/** Everything the page shows comes from these series (docs/operations.md lists them per view). */
const METRICS_READ = [
  "guard_requests_total",
  "guard_shed_total",
  "guard_cache_hits_total",
  "guard_cache_misses_total",
  "guard_request_cost",
  "guard_contract_checks_total",
  "guard_contract_violations_total",
  "guard_circuit_state",
  "guard_admission_inflight_cost",
  "guard_admission_limit_cost",
  "guard_admission_queued",
  "guard_config_reloads_total",
  "guard_envoy_unguarded_total",
  "guard_extproc_streams_total",
] as const;

type Row = {
  readonly labels: Readonly<Record<string, string | number | undefined>>;
  readonly value: number;
  readonly metricName?: string;
};

interface Sample {
  readonly at: number;
  readonly requests: ReadonlyMap<string, number>;
}

export class StatusReporter {
  readonly #source: StatusSource;
  readonly #startedAt: number;
  #samples: Sample[] = [];

  constructor(source: StatusSource) {
    this.#source = source;
    this.#startedAt = source.now();
    // A baseline at start: the first page view already has a rate (averaged since start).
    this.#samples.push({ at: this.#startedAt, requests: new Map() });
  }

  async report(): Promise<StatusReport> {
    const source = this.#source;
    const registry = source.registry();
    const fetched = new Map(
      await Promise.all(
        METRICS_READ.map(async (name) => [name, (await registry.getSingleMetric(name)?.get())?.values ?? []] as const),
      ),
    );
    const rows = (name: (typeof METRICS_READ)[number]): readonly Row[] => fetched.get(name) ?? [];
    const now = source.now();
    const requests = sumBy(rows("guard_requests_total"), "route");
    const baseline = this.#sample(now, requests);
    const window = now - baseline.at;
    const routeNames = [...new Set([...source.routes(), ...requests.keys()])];

    const routes = routeNames.map((route): RouteStatus => {
      const mine = (list: readonly Row[]): Row[] => list.filter((row) => row.labels.route === route);
      const total = requests.get(route) ?? 0;
      const sheds = mine(rows("guard_shed_total"))
        .filter((row) => row.value > 0)
        .map((row) => ({
          reason: String(row.labels.reason),
          priority: String(row.labels.priority),
          count: row.value,
        }))
        .sort((a, b) => b.count - a.count);
      const hits = sum(mine(rows("guard_cache_hits_total")));
      const misses = sum(mine(rows("guard_cache_misses_total")));
      return {
        route,
        requests: total,
        ratePerSecond:
          window >= MIN_SAMPLE_GAP_MS
            ? Math.max(0, total - (baseline.requests.get(route) ?? 0)) / (window / 1000)
            : null,
        answeredByGuard: sum(mine(rows("guard_requests_total")).filter((row) => row.labels.answered_by === "guard")),
        shed: sheds.reduce((total, shed) => total + shed.count, 0),
        sheds,
        cache: hits + misses > 0 ? { hits, misses, hitRatio: hits / (hits + misses) } : null,
        cost: costHistogram(mine(rows("guard_request_cost"))),
      };
    });

    return {
      version: source.version,
      uptimeSeconds: Math.round((now - this.#startedAt) / 1000),
      rateWindowSeconds: window >= MIN_SAMPLE_GAP_MS ? Math.round(window / 1000) : null,
      routes,
      pools: poolStatus(
        rows("guard_circuit_state"),
        rows("guard_admission_inflight_cost"),
        rows("guard_admission_limit_cost"),
        rows("guard_admission_queued"),
      ),
      contracts: contractStatus(
        rows("guard_contract_checks_total"),
        rows("guard_contract_violations_total"),
        source.recentViolations(),
        now,
      ),
      drift: driftStatus(source.drift()),
      rollouts: source.rollouts(),
      reloads: {
        success: sum(rows("guard_config_reloads_total").filter((row) => row.labels.result === "success")),
        failure: sum(rows("guard_config_reloads_total").filter((row) => row.labels.result === "failure")),
      },
      unguarded: unguardedStatus(rows("guard_envoy_unguarded_total"), sum(rows("guard_extproc_streams_total"))),
    };
  }

  /** Records the current totals and returns the oldest sample inside the rate window. */
  #sample(now: number, requests: ReadonlyMap<string, number>): Sample {
    const last = this.#samples.at(-1);
    if (last === undefined || now - last.at >= MIN_SAMPLE_GAP_MS) this.#samples.push({ at: now, requests });
    // Keep the newest sample at or before the window start, so the window spans a full minute.
    while (this.#samples.length > 2 && (this.#samples[1]?.at ?? now) <= now - RATE_WINDOW_MS) this.#samples.shift();
    const oldest = this.#samples[0] ?? { at: now, requests };
    // A counter that went down was reset (process restarted its series): start the window again.
    for (const [route, value] of requests) {
      if (value < (oldest.requests.get(route) ?? 0)) {
        this.#samples = [{ at: now, requests }];
        return this.#samples[0] ?? oldest;
      }
    }
    return oldest;
  }
}

function sum(rows: readonly Row[]): number {
  return rows.reduce((total, row) => total + row.value, 0);
}

function sumBy(rows: readonly Row[], label: string): Map<string, number> {
  const totals = new Map<string, number>();
  for (const row of rows) {
    const key = String(row.labels[label] ?? "");
    totals.set(key, (totals.get(key) ?? 0) + row.value);
  }
  return totals;
}

/** Sums the route's tiers and turns Prometheus' cumulative buckets into per-bucket counts. */
function costHistogram(rows: readonly Row[]): CostHistogram | null {
  const count = sum(rows.filter((row) => row.metricName?.endsWith("_count") === true));
  if (count === 0) return null;
  const cumulative = sumBy(
    rows.filter((row) => row.metricName?.endsWith("_bucket") === true),
    "le",
  );
  const bounds = [...cumulative.keys()].sort((a, b) => bound(a) - bound(b));
  let previous = 0;
  const buckets = bounds.map((le) => {
    const total = cumulative.get(le) ?? 0;
    const bucket = { le, count: total - previous };
    previous = total;
    return bucket;
  });
  return { count, sum: sum(rows.filter((row) => row.metricName?.endsWith("_sum") === true)), buckets };
}

function bound(le: string): number {
  return le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le);
}

function poolStatus(
  circuit: readonly Row[],
  inflight: readonly Row[],
  limit: readonly Row[],
  queued: readonly Row[],
): PoolStatus[] {
  const valueFor = (rows: readonly Row[], pool: string): number => sum(rows.filter((row) => row.labels.pool === pool));
  return circuit.map((row) => {
    const pool = String(row.labels.pool);
    return {
      pool,
      circuit: CIRCUIT_STATES[row.value] ?? "open",
      inflightCost: valueFor(inflight, pool),
      limitCost: valueFor(limit, pool),
      queued: valueFor(queued, pool),
    };
  });
}

function unguardedStatus(unguarded: readonly Row[], exchanges: number): UnguardedStatus | null {
  if (unguarded.length === 0) return null;
  const requests = sum(unguarded);
  return {
    requests,
    share: requests + exchanges > 0 ? requests / (requests + exchanges) : 0,
    byReason: Object.fromEntries(unguarded.map((row) => [String(row.labels.reason), row.value])),
  };
}

function contractStatus(
  checks: readonly Row[],
  violations: readonly Row[],
  recent: RecentViolations | undefined,
  now: number,
): ContractStatus[] {
  const keyOf = (row: Row): string => JSON.stringify([String(row.labels.contract), String(row.labels.model_version)]);
  const groups = new Map<
    string,
    { contract: string; modelVersion: string; checked: number; violated: number; rules: Map<string, number> }
  >();
  for (const row of checks) {
    const result = row.labels.result;
    // Only responses that reached a verdict say something about the model version.
    if (result !== "passed" && result !== "violated") continue;
    const key = keyOf(row);
    const group = groups.get(key) ?? {
      contract: String(row.labels.contract),
      modelVersion: String(row.labels.model_version),
      checked: 0,
      violated: 0,
      rules: new Map<string, number>(),
    };
    group.checked += row.value;
    if (result === "violated") group.violated += row.value;
    groups.set(key, group);
  }
  for (const row of violations) {
    const group = groups.get(keyOf(row));
    if (group === undefined) continue;
    const rule = String(row.labels.rule);
    group.rules.set(rule, (group.rules.get(rule) ?? 0) + row.value);
  }
  return [...groups.values()]
    .filter((group) => group.checked > 0)
    .map((group) => ({
      contract: group.contract,
      modelVersion: group.modelVersion,
      checked: group.checked,
      violated: group.violated,
      violationRatio: group.violated / group.checked,
      topRules: [...group.rules]
        .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
        .slice(0, TOP_RULES)
        .map(([rule, count]) => {
          const example = recent?.get(group.contract, group.modelVersion, rule);
          return {
            rule,
            count,
            example:
              example === undefined
                ? null
                : {
                    field: example.field,
                    message: example.message,
                    ageSeconds: Math.round((now - example.seenAt) / 1000),
                  },
          };
        }),
    }))
    .sort(
      (a, b) => b.violationRatio - a.violationRatio || b.violated - a.violated || a.contract.localeCompare(b.contract),
    );
}

function driftStatus(source: DriftSource | undefined): DriftStatus[] {
  if (source === undefined) return [];
  const drifting = (fields: readonly FieldDrift[]): DriftFieldStatus[] =>
    fields
      .filter((field) => field.drifting.length > 0)
      .map((field) => ({ field: field.field, drifting: field.drifting, scores: field.scores }));
  return source.report().map((route) => ({
    route: route.route,
    contract: route.contract,
    baseline: route.baseline,
    pinned: route.pinned,
    versions: route.versions.map((version) => ({
      modelVersion: version.version,
      samples: version.samples,
      verdict: version.verdict,
      topFields: drifting(version.fields).slice(0, source.topFields),
      inputDrift: drifting(version.input),
    })),
  }));
}
