// The drift monitor: fed by the contracts stage with every judged answer of a bound route (the
// parsed body, the contract, the model version), it keeps one profile per route and version and
// scores each version against its route's baseline on demand — for /metrics and /api/status,
// never on the request path. Per answer it only walks the contract's fields into sketches.
import { redisTarget } from "../../config-kit/redis.js";
import type { Contract } from "../../contracts/contract.js";
import type { Payload } from "../../contracts/payload.js";
import { realTimers, type Timers } from "../../util/timers.js";
import type { Exchange, Stage, StageConfig, StageDeps } from "../types.js";
import { type AnswerShape, answerShape, observePayloads } from "./answers.js";
import { TrafficWindow } from "./baseline.js";
import { type CompareOptions, compareVersion, type RouteDrift } from "./compare.js";
import type { DriftConfig, DriftThresholds, RouteDriftConfig } from "./config.js";
import { FleetProfiles } from "./fleet.js";
import { registerDriftMetrics, registerDriftRedisMetrics } from "./metrics.js";
import { type ProfileOptions, VersionProfile } from "./profile.js";

/** The longest warmUp waits for the fleet's Redis. */
const WARM_UP_WAIT_MS = 2_000;
/** Reports computed for a scrape serve the status page (and the next scrape) within this time. */
const REPORT_TTL_MS = 1_000;

/**
 * A stage only in name and life cycle (it starts no per-request run: the contracts stage feeds it),
 * so the pipeline closes its Redis connection on reload and drain.
 */
export interface DriftMonitor extends Stage {
  /** The contracts stage's observer: the payloads of one judged answer of a bound route. */
  observe(exchange: Exchange, contract: Contract, modelVersion: string, payloads: readonly Payload[]): void;
  /** Every watched route's drift, versions in order of first answer. */
  report(): readonly RouteDrift[];
  /** Drifting fields a report lists per version (drift.topFields). */
  readonly topFields: number;
  /** This sidecar's profile of one route and version (what it publishes to the fleet). */
  profile(route: string, version: string): VersionProfile | undefined;
  /** Publishes this sidecar's profiles and reads the others' now (drift.redis; done on answers when due). */
  sync(): Promise<void>;
}

/** What a route's answers taught: kept across reloads while the route profiles the same fields. */
interface RouteHistory {
  readonly contract: string;
  readonly shape: AnswerShape;
  /** The contract, payload, fields and sketch settings the profiles were built with. */
  readonly fingerprint: string;
  readonly versions: Map<string, VersionProfile>;
  readonly traffic: TrafficWindow;
  dropped: number;
}

/**
 * The profiles of every watched route, owned by the guard and handed to each monitor it builds, so
 * a config reload keeps them (as the metrics and the violations table): re-learning a baseline
 * would silence drift alerts for the minimum sample after every ConfigMap edit.
 */
export class DriftHistory {
  readonly routes = new Map<string, RouteHistory>();
}

interface RouteState {
  readonly kept: RouteHistory;
  readonly settings: RouteDriftConfig;
  readonly compare: CompareOptions;
  /** The contract object the history was last checked against (a reload compiles new ones). */
  checkedFor: Contract | undefined;
}

export function createDriftMonitor(
  config: StageConfig<DriftConfig, RouteDriftConfig>,
  deps: Pick<StageDeps, "registry" | "now" | "log"> & { readonly timers?: Timers; readonly history?: DriftHistory },
): DriftMonitor {
  const { section } = config;
  const options: ProfileOptions = {
    relativeAccuracy: section.relativeAccuracy,
    maxCategories: section.maxCategories,
  };
  const history = deps.history ?? new DriftHistory();
  const fingerprintOf = (contract: Contract, shape: AnswerShape): string =>
    JSON.stringify([contract.name, contract.spec.payload, shape.wrap, shape.specs, options, section.baselineWindowMs]);
  const stateOf = (kept: RouteHistory, settings: RouteDriftConfig): RouteState => ({
    kept,
    settings,
    compare: { minSamples: section.minSamples, thresholds: thresholdsOf(section, settings) },
    checkedFor: undefined,
  });
  const routes = new Map<string, RouteState>();
  for (const [route, kept] of history.routes) {
    const settings = config.routes.get(route);
    if (settings === undefined) history.routes.delete(route);
    else routes.set(route, stateOf(kept, settings));
  }
  const target = redisTarget(section.redis);
  const fleet =
    target === undefined
      ? undefined
      : new FleetProfiles(
          { ...section.redis, target },
          {
            now: deps.now,
            log: deps.log,
            timers: deps.timers ?? realTimers,
            events: registerDriftRedisMetrics(deps.registry),
            options,
          },
        );
  const mine = () => new Map([...routes].map(([route, state]) => [route, state.kept.versions] as const));
  let cached: { readonly at: number; readonly reads: number; readonly report: readonly RouteDrift[] } | undefined;

  const stateFor = (route: string, contract: Contract): RouteState | undefined => {
    const known = routes.get(route);
    if (known?.checkedFor === contract) return known;
    const settings = config.routes.get(route);
    const shape = answerShape(contract, section.maxFields);
    if (settings === undefined || shape === undefined) return undefined;
    const fingerprint = fingerprintOf(contract, shape);
    if (known !== undefined && known.kept.fingerprint === fingerprint) {
      known.checkedFor = contract;
      return known;
    }
    // New, or the reload changed what is profiled: earlier profiles measure other fields.
    const kept: RouteHistory = {
      contract: contract.name,
      shape,
      fingerprint,
      versions: new Map(),
      traffic: new TrafficWindow(section.baselineWindowMs),
      dropped: 0,
    };
    history.routes.set(route, kept);
    const state = stateOf(kept, settings);
    state.checkedFor = contract;
    routes.set(route, state);
    return state;
  };

  const report = (): readonly RouteDrift[] => {
    const now = deps.now();
    const reads = fleet?.reads ?? 0;
    if (cached !== undefined && now - cached.at < REPORT_TTL_MS && cached.reads === reads) return cached.report;
    const result = [...routes].map(([route, state]) =>
      routeDrift(route, state, now, withFleet(state, fleet?.others.get(route), section.maxVersions)),
    );
    cached = { at: now, reads, report: result };
    return result;
  };

  registerDriftMetrics(deps.registry, report);

  return {
    name: "drift",
    start: () => undefined,
    // Connected and synced once before the guard reports ready, so its first report is the fleet's.
    async warmUp() {
      if (fleet !== undefined && (await fleet.connected(WARM_UP_WAIT_MS))) await fleet.sync(mine());
    },
    close: () => fleet?.close(),
    sync: () => fleet?.sync(mine()) ?? Promise.resolve(),
    observe(exchange, contract, modelVersion, payloads) {
      if (!section.enabled) return;
      const kept = stateFor(exchange.route.name, contract)?.kept;
      if (kept === undefined) return;
      let profile = kept.versions.get(modelVersion);
      if (profile === undefined) {
        if (kept.versions.size >= section.maxVersions) {
          kept.dropped++;
          return;
        }
        profile = new VersionProfile(modelVersion, kept.shape.specs, options);
        kept.versions.set(modelVersion, profile);
      }
      kept.traffic.record(modelVersion, deps.now());
      profile.observeInput({ promptTokens: exchange.promptTokens, cost: exchange.cost, tier: exchange.tier });
      observePayloads(profile, kept.shape, payloads);
      fleet?.syncIfDue(mine);
    },
    report,
    topFields: section.topFields,
    profile: (route, version) => routes.get(route)?.kept.versions.get(version),
  };
}

/** The binding's thresholds, each one it does not set taken from the section's. */
export function thresholdsOf(section: DriftConfig, settings: RouteDriftConfig): DriftThresholds {
  const own = Object.entries(settings.thresholds).filter(([, value]) => value !== undefined);
  return { ...section.thresholds, ...Object.fromEntries(own) };
}

/**
 * This sidecar's profiles merged with the other sidecars' (copies: its own keep counting), in
 * order of first answer here, then the versions only others saw; at most maxVersions.
 */
function withFleet(
  state: RouteState,
  others: ReadonlyMap<string, VersionProfile> | undefined,
  maxVersions: number,
): ReadonlyMap<string, VersionProfile> {
  const { versions } = state.kept;
  if (others === undefined || others.size === 0) return versions;
  const merged = new Map<string, VersionProfile>();
  for (const version of new Set([...versions.keys(), ...others.keys()])) {
    if (merged.size >= maxVersions) break;
    const own = versions.get(version);
    const theirs = others.get(version);
    if (own === undefined || theirs === undefined) {
      const either = own ?? theirs;
      if (either !== undefined) merged.set(version, either);
      continue;
    }
    const copy = VersionProfile.fromJSON(own.toJSON(), own.options);
    copy.merge(theirs);
    merged.set(version, copy);
  }
  return merged;
}

function routeDrift(
  route: string,
  state: RouteState,
  now: number,
  versions: ReadonlyMap<string, VersionProfile>,
): RouteDrift {
  const pinned = state.settings.baselineVersion;
  const baseline = pinned ?? state.kept.traffic.busiest(now) ?? null;
  const baselineProfile = baseline === null ? undefined : versions.get(baseline);
  return {
    route,
    contract: state.kept.contract,
    baseline,
    pinned: pinned !== undefined,
    droppedAnswers: state.kept.dropped,
    versions: [...versions.values()].map((profile) => compareVersion(profile, baselineProfile, state.compare)),
  };
}
