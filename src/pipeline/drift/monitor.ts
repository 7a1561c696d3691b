// The drift monitor: fed by the contracts stage with every judged answer of a bound route (the
// parsed body, the contract, the model version), it keeps one profile per route and version and
// scores each version against its route's baseline on demand — for /metrics and /api/status,
// never on the request path. Per answer it only walks the contract's fields into sketches.
import type { Contract } from "../../contracts/contract.js";
import { extractPayloads, type PayloadStep, parsePayloadPath } from "../../contracts/payload.js";
import type { Exchange, StageConfig, StageDeps } from "../types.js";
import { TrafficWindow } from "./baseline.js";
import { type CompareOptions, compareVersion, type RouteDrift } from "./compare.js";
import type { DriftConfig, DriftThresholds, RouteDriftConfig } from "./config.js";
import { type FieldSpec, profiledFields } from "./fields.js";
import { registerDriftMetrics } from "./metrics.js";
import { type ProfileOptions, VersionProfile } from "./profile.js";

/** Payloads of one answer profiled at most (the contract checks up to contracts.maxPayloads). */
const MAX_PAYLOADS = 64;
/** Reports computed for a scrape serve the status page (and the next scrape) within this time. */
const REPORT_TTL_MS = 1_000;

export interface DriftMonitor {
  /** The contracts stage's observer: one judged answer (its parsed body) of a bound route. */
  observe(exchange: Exchange, contract: Contract, modelVersion: string, body: unknown): void;
  /** Every watched route's drift, versions in order of first answer. */
  report(): readonly RouteDrift[];
  /** Drifting fields a report lists per version (drift.topFields). */
  readonly topFields: number;
  /** The route's profile of one version (sidecars exchange these; tests read them). */
  profile(route: string, version: string): VersionProfile | undefined;
}

interface RouteState {
  readonly contract: string;
  readonly specs: readonly FieldSpec[];
  readonly steps: readonly PayloadStep[];
  /** The contract's wrapField name: each payload is that field's value, not a message. */
  readonly wrap: string | undefined;
  readonly versions: Map<string, VersionProfile>;
  readonly traffic: TrafficWindow;
  readonly settings: RouteDriftConfig;
  readonly compare: CompareOptions;
  dropped: number;
}

export function createDriftMonitor(
  config: StageConfig<DriftConfig, RouteDriftConfig>,
  deps: Pick<StageDeps, "registry" | "now">,
): DriftMonitor {
  const { section } = config;
  const options: ProfileOptions = {
    relativeAccuracy: section.relativeAccuracy,
    maxCategories: section.maxCategories,
  };
  const routes = new Map<string, RouteState>();
  let cached: { readonly at: number; readonly report: readonly RouteDrift[] } | undefined;

  const stateFor = (route: string, contract: Contract): RouteState | undefined => {
    const known = routes.get(route);
    if (known !== undefined) return known;
    const settings = config.routes.get(route);
    const parsed = parsePayloadPath(contract.spec.payload ?? "$");
    if (settings === undefined || !parsed.ok) return undefined;
    const wrap = contract.wrap?.name;
    const fields = profiledFields(contract.spec.message, section.maxFields);
    const state: RouteState = {
      contract: contract.name,
      specs: wrap === undefined ? fields : fields.filter((spec) => spec.path === wrap),
      steps: parsed.steps,
      wrap,
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
    if (cached !== undefined && now - cached.at < REPORT_TTL_MS) return cached.report;
    const result = [...routes].map(([route, state]) => routeDrift(route, state, now));
    cached = { at: now, report: result };
    return result;
  };

  registerDriftMetrics(deps.registry, report);

  return {
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
        profile = new VersionProfile(modelVersion, state.specs, options);
        state.versions.set(modelVersion, profile);
      }
      state.traffic.record(modelVersion, deps.now());
      profile.observeInput({ promptTokens: exchange.promptTokens, cost: exchange.cost, tier: exchange.tier });
      const { payloads } = extractPayloads(body, state.steps, MAX_PAYLOADS);
      const { specs, wrap } = state;
      for (const payload of payloads) {
        // An answer without its payload (missing, not JSON) is an answer whose every field is missing.
        const value = "value" in payload ? payload.value : undefined;
        const root = wrap === undefined ? value : { [wrap]: value };
        profile.observePayload((index) => valueAt(root, specs[index]?.keys ?? []));
      }
    },
    report,
    topFields: section.topFields,
    profile: (route, version) => routes.get(route)?.versions.get(version),
  };
}

/** The binding's thresholds, each one it does not set taken from the section's. */
function thresholdsOf(section: DriftConfig, settings: RouteDriftConfig): DriftThresholds {
  const own = Object.entries(settings.thresholds).filter(([, value]) => value !== undefined);
  return { ...section.thresholds, ...Object.fromEntries(own) };
}

function routeDrift(route: string, state: RouteState, now: number): RouteDrift {
  const pinned = state.settings.baselineVersion;
  const baseline = pinned ?? state.traffic.busiest(now) ?? null;
  const baselineProfile = baseline === null ? undefined : state.versions.get(baseline);
  return {
    route,
    contract: state.contract,
    baseline,
    pinned: pinned !== undefined,
    droppedAnswers: state.dropped,
    versions: [...state.versions.values()].map((profile) => compareVersion(profile, baselineProfile, state.compare)),
  };
}

/** The value under one of each level's keys (proto name or JSON name), or undefined. */
function valueAt(root: unknown, keys: readonly (readonly string[])[]): unknown {
  let value = root;
  for (const names of keys) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
    const object = value as Record<string, unknown>;
    let next: unknown;
    for (const name of names) {
      next = object[name];
      if (next !== undefined) break;
    }
    value = next;
  }
  return value;
}
