// The drift monitor: fed by the contracts stage with every judged answer of a bound route (the
// parsed body, the contract, the model version), it keeps one profile per route and version and
// scores each version against its route's baseline on demand — for /metrics and /api/status,
// never on the request path. Per answer it only walks the contract's fields into sketches.
import type { Contract } from "../../contracts/contract.js";
import { realTimers, type Timers } from "../../util/timers.js";
import type { Exchange, Stage, StageConfig, StageDeps } from "../types.js";
import { type AnswerShape, answerShape, observeAnswer } from "./answers.js";
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
  /** The contracts stage's observer: one judged answer (its parsed body) of a bound route. */
  observe(exchange: Exchange, contract: Contract, modelVersion: string, body: unknown): void;
  /** Every watched route's drift, versions in order of first answer. */
  report(): readonly RouteDrift[];
  /** Drifting fields a report lists per version (drift.topFields). */
  readonly topFields: number;
  /** This sidecar's profile of one route and version (what it publishes to the fleet). */
  profile(route: string, version: string): VersionProfile | undefined;
  /** Publishes this sidecar's profiles and reads the others' now (drift.redis; done on answers when due). */
  sync(): Promise<void>;
}

interface RouteState {
  readonly contract: string;
  readonly shape: AnswerShape;
  readonly versions: Map<string, VersionProfile>;
  readonly traffic: TrafficWindow;
  readonly settings: RouteDriftConfig;
  readonly compare: CompareOptions;
  dropped: number;
}

export function createDriftMonitor(
  config: StageConfig<DriftConfig, RouteDriftConfig>,
  deps: Pick<StageDeps, "registry" | "now" | "log"> & { readonly timers?: Timers },
): DriftMonitor {
  const { section } = config;
  const options: ProfileOptions = {
    relativeAccuracy: section.relativeAccuracy,
    maxCategories: section.maxCategories,
  };
  const routes = new Map<string, RouteState>();
  const { url } = section.redis;
  const fleet =
    url === undefined
      ? undefined
      : new FleetProfiles(
          { ...section.redis, url },
          {
            now: deps.now,
            log: deps.log,
            timers: deps.timers ?? realTimers,
            events: registerDriftRedisMetrics(deps.registry),
            options,
          },
        );
  const mine = () => new Map([...routes].map(([route, state]) => [route, state.versions] as const));
  let cached: { readonly at: number; readonly reads: number; readonly report: readonly RouteDrift[] } | undefined;

  const stateFor = (route: string, contract: Contract): RouteState | undefined => {
    const known = routes.get(route);
    if (known !== undefined) return known;
    const settings = config.routes.get(route);
    const shape = answerShape(contract, section.maxFields);
    if (settings === undefined || shape === undefined) return undefined;
    const state: RouteState = {
      contract: contract.name,
      shape,
      versions: new Map(),
      traffic: new TrafficWindow(section.baselineWindowMs),
      settings,
      compare: { minSamples: section.minSamples, thresholds: thresholdsOf(section, settings) },
      dropped: 0,
    };
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
    observe(exchange, contract, modelVersion, body) {
      if (!section.enabled) return;
      const state = stateFor(exchange.route.name, contract);
      if (state === undefined) return;
      let profile = state.versions.get(modelVersion);
      if (profile === undefined) {
        if (state.versions.size >= section.maxVersions) {
          state.dropped++;
          return;
        }
        profile = new VersionProfile(modelVersion, state.shape.specs, options);
        state.versions.set(modelVersion, profile);
      }
      state.traffic.record(modelVersion, deps.now());
      profile.observeInput({ promptTokens: exchange.promptTokens, cost: exchange.cost, tier: exchange.tier });
      observeAnswer(profile, state.shape, body);
      fleet?.syncIfDue(mine);
    },
    report,
    topFields: section.topFields,
    profile: (route, version) => routes.get(route)?.versions.get(version),
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
  if (others === undefined || others.size === 0) return state.versions;
  const merged = new Map<string, VersionProfile>();
  for (const version of new Set([...state.versions.keys(), ...others.keys()])) {
    if (merged.size >= maxVersions) break;
    const own = state.versions.get(version);
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
  const baseline = pinned ?? state.traffic.busiest(now) ?? null;
  const baselineProfile = baseline === null ? undefined : versions.get(baseline);
  return {
    route,
    contract: state.contract,
    baseline,
    pinned: pinned !== undefined,
    droppedAnswers: state.dropped,
    versions: [...versions.values()].map((profile) => compareVersion(profile, baselineProfile, state.compare)),
  };
}
