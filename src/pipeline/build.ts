// The stage line-up. Order matters (see Stage in types.ts): request hooks run top to bottom,
// response hooks bottom to top, so the contract verdict is known before the cache stores.
// Usage sits outside (before) cache, admission and contracts: on the response path it runs after
// them, so it sees the response as they let it go, the bytes the client gets, when it gets them: the
// contracts stage may hold back, cut or replace an answer, and a replaced or cut answer's usage
// never reached the client. Nothing before it in the list touches a response body. It comes after
// complexity, whose tier (a label of its timings) is set at the request. Budget sits after cache (a
// cached answer costs the tenant nothing) and before admission (a request over its tenant's budget
// never takes the upstream's), and after usage, whose reported tokens it counts at the end.
// Identity (tenant and priority class) is not a stage: the runner derives it before any stage starts.
// Each stage gets its own sections only; this is the one place that sees them all side by side.
import type { CompiledContracts } from "../contracts/compile.js";
import type { ContractsSection, RouteContract } from "../contracts/config.js";
import type { ComponentLogs } from "../log.js";
import type { ExchangeTracer } from "../tracing/api.js";
import type { AdmissionConfig, RouteAdmissionConfig } from "./admission/config.js";
import { createAdmissionStage } from "./admission/stage.js";
import type { AnnotateConfig } from "./annotate/config.js";
import { createAnnotateStage } from "./annotate/stage.js";
import type { BudgetConfig, RouteBudgetConfig } from "./budget/config.js";
import { createBudgetStage } from "./budget/stage.js";
import type { CacheSettings, RouteCacheConfig } from "./cache/config.js";
import {
  CACHE_HEADER,
  CACHE_REASON_HEADER,
  CACHE_TIER_HEADER,
  type CacheStage,
  createCacheStage,
} from "./cache/stage.js";
import type { CanaryConfig, RouteCanaryConfig } from "./canary/config.js";
import { type CanaryStage, type CanaryStates, createCanaryStage } from "./canary/stage.js";
import type { ComplexityConfig } from "./complexity/config.js";
import { createComplexityStage } from "./complexity/stage.js";
import type { RecentViolations } from "./contracts/recent.js";
import { type ContractsStage, createContractsStage } from "./contracts/stage.js";
import type { DriftConfig, RouteDriftConfig } from "./drift/config.js";
import { createDriftMonitor, type DriftHistory, type DriftMonitor } from "./drift/monitor.js";
import type { IdentityConfig, RouteIdentityConfig } from "./identity/config.js";
import { createIdentify } from "./identity/identify.js";
import type { MaintenanceConfig } from "./maintenance/config.js";
import { createMaintenanceStage } from "./maintenance/stage.js";
import { Pipeline, type PipelineDeps, type PipelineRouteRef } from "./pipeline.js";
import type { Stage, StageDeps } from "./types.js";
import type { RouteUsageConfig, UsageConfig } from "./usage/config.js";
import { createUsageStage } from "./usage/stage.js";

export interface PipelineRoute extends PipelineRouteRef {
  readonly maintenance?: MaintenanceConfig | undefined;
  readonly complexity: ComplexityConfig;
  readonly cache: RouteCacheConfig;
  readonly admission: RouteAdmissionConfig;
  readonly budget: RouteBudgetConfig;
  readonly contract?: RouteContract | undefined;
  readonly drift: RouteDriftConfig;
  readonly canary?: RouteCanaryConfig | undefined;
  readonly usage: RouteUsageConfig;
  readonly identity: RouteIdentityConfig;
}

/** The parts of the guard's configuration the pipeline runs on (config/ validates and freezes them). */
export interface PipelineConfig {
  readonly routes: readonly PipelineRoute[];
  readonly annotate: AnnotateConfig;
  readonly cache: CacheSettings;
  readonly admission: AdmissionConfig;
  readonly budget: BudgetConfig;
  readonly contracts: ContractsSection;
  readonly drift: DriftConfig;
  readonly canary: CanaryConfig;
  readonly usage: UsageConfig;
  readonly identity: IdentityConfig;
  readonly envoy: { readonly messageTimeoutMs: number };
}

export interface BuiltPipeline {
  readonly pipeline: Pipeline;
  /** Kept by name for the admin purge endpoint. */
  readonly cache: CacheStage;
  /** Absent when no route binds a contract; the status page reads its recent violations. */
  readonly contracts: ContractsStage | undefined;
  /** Absent when no route binds a contract; the status page and /metrics read its report. */
  readonly drift: DriftMonitor | undefined;
  /** Kept for the admin release endpoint and the rollout status. */
  readonly canary: CanaryStage;
}

function byRoute<Section>(
  routes: readonly PipelineRoute[],
  section: (route: PipelineRoute) => Section,
): ReadonlyMap<string, Section> {
  return new Map(routes.map((route) => [route.name, section(route)]));
}

/** Every stage's own configuration, cut from the whole: what each factory below is given. */
export function stageConfigs(config: PipelineConfig) {
  const { routes } = config;
  // Each complexity tier reaches its own pool: admission keeps a domain per tier, the cache a model version.
  const tiers = byRoute(routes, (route) =>
    route.complexity.enabled ? route.complexity.tiers.map((tier) => tier.name) : [],
  );
  const canaries = new Map(
    routes.flatMap((route) => (route.canary === undefined ? [] : [[route.name, route.canary] as const])),
  );
  // A rollout's pools each keep their own model version in the cache, as tiers do.
  const pools = new Map(
    [...canaries].map(([route, canary]) => [
      route,
      [canary.stable, ...canary.candidates.map((candidate) => candidate.pool)],
    ]),
  );
  return {
    maintenance: new Map(
      routes.flatMap((route) => (route.maintenance === undefined ? [] : [[route.name, route.maintenance] as const])),
    ),
    annotate: config.annotate,
    canary: { section: config.canary, routes: canaries },
    complexity: byRoute(routes, (route) => route.complexity),
    cache: {
      section: config.cache,
      routes: byRoute(routes, (route) => route.cache),
      messageTimeoutMs: config.envoy.messageTimeoutMs,
      tiers,
      pools,
    },
    budget: { section: config.budget, routes: byRoute(routes, (route) => route.budget) },
    admission: {
      section: config.admission,
      routes: byRoute(routes, (route) => route.admission),
      tiers,
    },
    contracts: { section: config.contracts, routes: byRoute(routes, (route) => route.contract) },
    // Only routes that bind a contract are watched: the profiles come from the contract's schema.
    drift: {
      section: config.drift,
      routes: new Map(
        routes.flatMap((route) => (route.contract === undefined ? [] : [[route.name, route.drift] as const])),
      ),
    },
    usage: { section: config.usage, routes: byRoute(routes, (route) => route.usage) },
    identity: { section: config.identity, routes: byRoute(routes, (route) => route.identity) },
  };
}

/**
 * `contracts` are the compiled contracts when a route binds one (see config/prepare.ts); `tracer`
 * is absent when tracing is off.
 */
export function buildPipeline(
  config: PipelineConfig,
  deps: Omit<PipelineDeps & StageDeps, "log"> & {
    readonly logs: ComponentLogs;
    readonly tracer?: ExchangeTracer | undefined;
    /** The status page's violations table, kept by the guard across reloads. */
    readonly recentViolations?: RecentViolations;
    /** The drift profiles, kept by the guard across reloads. */
    readonly driftHistory?: DriftHistory;
    /** The rollout candidates' health and quarantines, kept by the guard across reloads. */
    readonly canaryStates?: CanaryStates;
  },
  contracts?: CompiledContracts,
): BuiltPipeline {
  const sections = stageConfigs(config);
  const pipelineDeps = { ...deps, log: deps.logs.of("pipeline") };
  // The cache and budget stages log about nothing but their shared Redis tier.
  const redisDeps = { ...deps, log: deps.logs.of("redis") };
  const cache = createCacheStage(sections.cache, redisDeps);
  const canary = createCanaryStage(sections.canary, {
    ...pipelineDeps,
    ...(deps.canaryStates === undefined ? {} : { states: deps.canaryStates }),
  });
  const stages: Stage[] = [
    createMaintenanceStage(sections.maintenance),
    createAnnotateStage(sections.annotate),
    // Before the cache: a cached answer belongs to the pool (model version) the request goes to.
    canary,
    createComplexityStage(sections.complexity, pipelineDeps),
    createUsageStage(sections.usage, pipelineDeps),
    cache,
    createBudgetStage(sections.budget, redisDeps),
    createAdmissionStage(sections.admission, pipelineDeps),
  ];
  const drift =
    contracts === undefined
      ? undefined
      : createDriftMonitor(sections.drift, {
          ...deps,
          log: deps.logs.of("drift"),
          ...(deps.driftHistory === undefined ? {} : { history: deps.driftHistory }),
        });
  const contractsStage =
    contracts === undefined
      ? undefined
      : createContractsStage(sections.contracts, pipelineDeps, contracts, {
          // The drift monitor profiles every answer, the canary stage compares its sampled ones.
          observe: (exchange, contract, version, payloads) => {
            drift?.observe(exchange, contract, version, payloads);
            canary.observeAnswer(exchange, contract, payloads);
          },
          ...(deps.recentViolations === undefined ? {} : { recent: deps.recentViolations }),
        });
  if (contractsStage !== undefined) stages.push(contractsStage);
  // Runs on no request (the contracts stage feeds it); listed so the pipeline closes its Redis.
  if (drift !== undefined) stages.push(drift);
  const identify = createIdentify(sections.identity, deps.registry);
  // The headers the cache and contracts stages state their verdicts in: the trace reads them there.
  const tracing =
    deps.tracer === undefined
      ? undefined
      : {
          tracer: deps.tracer,
          decisionHeaders: {
            cache: CACHE_HEADER,
            cacheTier: CACHE_TIER_HEADER,
            cacheReason: CACHE_REASON_HEADER,
            contract: config.contracts.header,
          },
        };
  return {
    pipeline: new Pipeline(
      config.routes,
      stages,
      { ...pipelineDeps, tracing, sideRequest: (request) => canary.sideRequest(request) },
      identify,
    ),
    cache,
    contracts: contractsStage,
    drift,
    canary,
  };
}
