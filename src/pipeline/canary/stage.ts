// The canary stage: per request of a route in rollout, the pool that answers (the stable one or a
// candidate, by weight; a tenant stays on one pool), named in a header Envoy's route table matches;
// per answer, what it showed (a contract violation, an upstream 5xx) counted toward the candidate's
// health, and a candidate unhealthy with confidence quarantined: its share drops to the probe rate,
// clients get the stable pool's answers, and an operator (or a healthy probe run) releases it.
// With canary.redis the sidecars share counts, quarantines and releases on a timer (fleet.ts).
import { randomBytes, timingSafeEqual } from "node:crypto";
import { Counter, Gauge, type Registry } from "prom-client";
import { redisTarget } from "../../config-kit/redis.js";
import type { Contract } from "../../contracts/contract.js";
import type { Payload } from "../../contracts/payload.js";
import { realTimers, type Timers } from "../../util/timers.js";
import { registerFleetRedisMetrics } from "../shared-redis.js";
import type {
  Edits,
  Exchange,
  HeaderMap,
  Outcome,
  RequestInfo,
  Stage,
  StageConfig,
  StageDeps,
  Step,
} from "../types.js";
import { CandidateState, type Transition } from "./candidate.js";
import type { CanaryConfig, RouteCanaryConfig } from "./config.js";
import { CanaryFleet, type CanaryFleetOp } from "./fleet.js";
import type { AnswerKind, HealthWindow } from "./health.js";
import { ShadowComparison, type ShadowReport, type ShadowSample, ShadowState, type SideSender } from "./shadow.js";

/**
 * The header of the guard's own side requests (shadow comparison): "<route> <pool> <secret>". Only
 * this guard knows the secret, so a client's copy is an ordinary request's header (and removed).
 */
export const SHADOW_HEADER = "x-guard-shadow";

/** The longest warmUp waits for the fleet's Redis. */
const WARM_UP_WAIT_MS = 2_000;

/** The candidates' states, kept by the guard across reloads (a quarantine must survive a config edit). */
export class CanaryStates {
  readonly #states = new Map<string, CandidateState>();
  /**
   * This guard's name in the fleet's counts: the same across reloads, or a reloaded guard's counts
   * would be added to the ones it published before.
   */
  readonly sidecar = randomBytes(6).toString("hex");
  /** What proves a request is this guard's side request: kept across reloads, so none in flight is lost. */
  readonly shadowSecret = randomBytes(16).toString("hex");
  readonly #shadows = new Map<string, ShadowState>();

  /** A route's shadow comparison windows. */
  shadow(route: string): ShadowState {
    let state = this.#shadows.get(route);
    if (state === undefined) {
      state = new ShadowState();
      this.#shadows.set(route, state);
    }
    return state;
  }

  get(route: string, pool: string, now: () => number): CandidateState {
    const key = `${route}\u0000${pool}`;
    let state = this.#states.get(key);
    if (state === undefined) {
      state = new CandidateState(now);
      this.#states.set(key, state);
    }
    return state;
  }

  /** Forgets the pools no route names any more. */
  retain(routes: ReadonlyMap<string, RouteCanaryConfig>): void {
    for (const key of [...this.#states.keys()]) {
      const [route = "", pool = ""] = key.split("\u0000");
      if (!routes.get(route)?.candidates.some((candidate) => candidate.pool === pool)) this.#states.delete(key);
    }
    for (const route of [...this.#shadows.keys()])
      if (routes.get(route)?.shadow === undefined) this.#shadows.delete(route);
  }
}

export type ReleaseResult = "released" | "not_quarantined" | "unknown";

export interface CandidateStatus {
  readonly pool: string;
  readonly weight: number;
  /** Its share of the route's requests now (the probe share while quarantined). */
  readonly share: number;
  /** The answers the health rule judges: the fleet's with canary.redis, else this sidecar's. */
  readonly window: HealthWindow;
  /** This sidecar's part of them. */
  readonly ownWindow: HealthWindow;
  readonly quarantine: {
    /** Decided here, or adopted from another sidecar. */
    readonly source: "local" | "fleet";
    readonly ageSeconds: number;
    readonly reason: "violations" | "errors";
    readonly rate: number;
    readonly lowerBound: number;
    readonly max: number;
    readonly evidence: HealthWindow;
    readonly healthyProbes: number;
  } | null;
}

export interface CanaryRouteStatus {
  readonly route: string;
  readonly stable: string;
  readonly candidates: readonly CandidateStatus[];
  /** The route's shadow comparison, per field; null without canary.shadow. */
  readonly shadow: ShadowReport | null;
}

export interface CanaryStage extends Stage {
  /** The operator's release of a quarantined candidate (POST /admin/canary/release). */
  release(route: string, pool: string): ReleaseResult;
  status(): readonly CanaryRouteStatus[];
  /** Publishes this sidecar's counts and quarantines and adopts the fleet's now (done on a timer). */
  sync(): Promise<void>;
  /**
   * The contracts stage's parse of an answer it judged whole: a sampled request's primary answer,
   * compared with the side answers once the exchange ended.
   */
  observeAnswer(exchange: Exchange, contract: Contract, payloads: readonly Payload[]): void;
  /**
   * For the runner, before any route match or stage: this guard's side request (x-guard-shadow with
   * its secret), its route and the edits that send it to the pool it names; undefined for any other.
   */
  sideRequest(request: RequestInfo): { readonly route: string; readonly edits: Edits } | undefined;
}

interface Route {
  readonly settings: RouteCanaryConfig;
  readonly candidates: readonly { readonly pool: string; readonly weight: number; readonly state: CandidateState }[];
  readonly shadow: ShadowComparison | undefined;
}

export function createCanaryStage(
  config: StageConfig<CanaryConfig, RouteCanaryConfig>,
  deps: StageDeps & {
    readonly states?: CanaryStates;
    readonly random?: () => number;
    readonly timers?: Timers;
    /** Wall-clock ms (Date.now): a quarantine's time as other sidecars read it. */
    readonly wall?: () => number;
    /** Sends a shadow comparison's side request (tests); by default through canary.envoyUrl. */
    readonly send?: SideSender;
  },
): CanaryStage {
  const states = deps.states ?? new CanaryStates();
  states.retain(config.routes);
  const random = deps.random ?? Math.random;
  const timers = deps.timers ?? realTimers;
  const metrics = canaryMetrics(deps, () => routes);
  const send = deps.send ?? throughEnvoy(config.section.envoyUrl, states.shadowSecret);
  const shadowOf = (name: string, settings: RouteCanaryConfig): ShadowComparison | undefined =>
    settings.shadow === undefined
      ? undefined
      : new ShadowComparison(settings.shadow, settings.stable, states.shadow(name), {
          random,
          timers,
          send,
          events: {
            sample: (result) => metrics.shadowSamples.inc({ route: name, pool: settings.shadow?.pool ?? "", result }),
            side: (pool, result) => metrics.shadowSide.inc({ route: name, pool, result }),
          },
          warn: (message, detail) => deps.log.warn({ route: name, ...detail }, message),
        });
  const routes = new Map<string, Route>(
    [...config.routes].map(([name, settings]) => [
      name,
      {
        settings,
        candidates: settings.candidates.map(({ pool, weight }) => ({
          pool,
          weight,
          state: states.get(name, pool, deps.now),
        })),
        shadow: shadowOf(name, settings),
      },
    ]),
  );
  /** The requests drawn for comparison, by exchange, until their answers are compared. */
  const samples = new WeakMap<Exchange, ShadowSample>();

  const transitioned = (route: string, pool: string, transition: Transition): void => {
    if (transition === undefined) return;
    if (transition.kind === "quarantined") {
      const { verdict, evidence, source } = transition.quarantine;
      metrics.quarantines.inc({ route, pool, reason: verdict.reason, source });
      deps.log.warn(
        { event: "canary_quarantine", route, pool, reason: verdict.reason, source, ...evidence, ...rounded(verdict) },
        source === "local" ? "canary candidate quarantined" : "canary candidate quarantined by another sidecar",
      );
    } else {
      deps.log.info(
        { event: "canary_release", route, pool, by: transition.by, healthyProbes: transition.after.healthyProbes },
        "canary candidate released",
      );
    }
  };

  const target = redisTarget(config.section.redis);
  const fleet =
    target === undefined || routes.size === 0
      ? undefined
      : new CanaryFleet(
          { ...config.section.redis, target },
          {
            now: deps.now,
            wall: deps.wall ?? Date.now,
            log: deps.log,
            timers,
            events: registerFleetRedisMetrics<CanaryFleetOp>(deps.registry, {
              stage: "canary",
              up: "1 while the rollouts' shared Redis answers, 0 while each sidecar judges its own answers alone",
              errors: "Failed or timed-out calls to the rollouts' shared Redis, by op (connect, sync)",
            }),
          },
          states.sidecar,
        );
  const candidates = [...routes].flatMap(([route, { settings, candidates }]) =>
    candidates.map(({ pool, state }) => ({ route, pool, state, settings })),
  );
  const exchangeWithFleet = async (): Promise<boolean> => {
    if (fleet === undefined) return false;
    const views = await fleet.sync(
      candidates.map(({ route, pool, state }) => ({
        route,
        pool,
        generation: state.generation,
        releasing: state.releaseUnshared,
        window: state.window,
        quarantine: state.quarantine?.source === "local" ? state.quarantine : undefined,
      })),
    );
    if (views === undefined) return false;
    let decidedHere = false;
    candidates.forEach(({ route, pool, state, settings }, index) => {
      const view = views[index];
      if (view === undefined) return;
      if (state.releaseUnshared && view.generation > state.generation) state.releaseShared(view.generation);
      const transition = state.adoptFleet(view, settings);
      decidedHere ||= transition?.kind === "quarantined" && transition.quarantine.source === "local";
      transitioned(route, pool, transition);
    });
    return decidedHere;
  };
  // One sync at a time; a decision made meanwhile (an answer's quarantine, an operator's release)
  // is shared by another right after, not at the next tick.
  let syncing: Promise<void> | undefined;
  let shareAgain = false;
  const sync = (): Promise<void> => {
    if (syncing !== undefined) {
      shareAgain = true;
      return syncing;
    }
    syncing = (async () => {
      do {
        shareAgain = false;
        // The fleet's counts can quarantine here: published by the next round, not a tick later.
        if (await exchangeWithFleet()) shareAgain = true;
      } while (shareAgain);
    })().finally(() => {
      syncing = undefined;
    });
    return syncing;
  };
  const shareSoon = (): void => {
    // Redis failures are handled inside; anything else must not become an unhandled rejection.
    if (fleet !== undefined)
      sync().catch((error: unknown) => deps.log.warn({ err: (error as Error).message }, "canary: fleet sync failed"));
  };
  let timer: unknown;
  let closed = false;
  const syncLater = (): void => {
    if (fleet === undefined || closed) return;
    timer = timers.set(() => {
      shareSoon();
      syncLater();
    }, config.section.redis.syncIntervalMs);
  };
  syncLater();

  return {
    name: "canary",
    // Connected and synced once before the guard reports ready, so it starts with the fleet's quarantines.
    async warmUp() {
      if (fleet !== undefined && (await fleet.connected(WARM_UP_WAIT_MS))) await sync();
    },
    async close() {
      closed = true;
      timers.clear(timer);
      await fleet?.close();
    },
    sync,
    start(exchange) {
      const route = routes.get(exchange.route.name);
      if (route === undefined) return undefined;
      const pool = choosePool(route, exchange, random);
      exchange.pool = pool;
      const { request } = exchange;
      const sample =
        pool === route.settings.stable
          ? route.shadow?.draw({
              route: exchange.route.name,
              method: request.method,
              path: request.path,
              headers: forwardable(request.headers, route.settings.header),
            })
          : undefined;
      if (sample !== undefined) samples.set(exchange, sample);
      return {
        onRequestHeaders: (): Step => ({
          type: "continue",
          edits: {
            setHeaders: { [route.settings.header]: pool },
            clearRouteCache: true,
            // A client's own copy proved nothing (sideRequest): it is not the upstream's business.
            ...(request.headers.has(SHADOW_HEADER) ? { removeHeaders: [SHADOW_HEADER] } : {}),
          },
          // The answer's status tells an upstream failure; a sampled request is sent again, body and all.
          needs: {
            responseHeaders: true,
            ...(sample !== undefined && !request.endOfStream ? { requestBody: true } : {}),
          },
        }),
        onRequestBody(body): Step {
          // A copy: the comparison outlives the message the body came in.
          if (sample !== undefined) sample.body = Uint8Array.from(body);
          return { type: "continue" };
        },
        onEnd(outcome) {
          if (sample !== undefined) {
            samples.delete(exchange);
            if (comparable(exchange, outcome))
              route.shadow
                ?.fire(sample)
                .catch((error: unknown) =>
                  deps.log.warn({ err: (error as Error).message }, "canary: shadow comparison failed"),
                );
            else route.shadow?.abandon(sample);
          }
          const kind = answerKind(exchange, outcome);
          if (kind === undefined) return;
          metrics.answers.inc({ route: exchange.route.name, pool, kind });
          const candidate = route.candidates.find((entry) => entry.pool === pool);
          if (candidate === undefined) return;
          const transition = candidate.state.record(kind, route.settings);
          transitioned(exchange.route.name, pool, transition);
          // Shared after the answer went out, never awaited: the request path makes no Redis call.
          if (transition !== undefined) shareSoon();
        },
      };
    },
    observeAnswer(exchange, contract, payloads) {
      const sample = samples.get(exchange);
      if (sample !== undefined) sample.primary = { contract, payloads };
    },
    sideRequest(request) {
      const value = request.headers.get(SHADOW_HEADER);
      if (value === undefined) return undefined;
      const [name = "", pool = "", secret = ""] = value.split(" ");
      if (!sameSecret(secret, states.shadowSecret)) return undefined;
      const route = routes.get(name);
      if (route?.shadow === undefined) return undefined;
      if (pool !== route.settings.stable && pool !== route.settings.shadow?.pool) return undefined;
      return {
        route: name,
        edits: { setHeaders: { [route.settings.header]: pool }, removeHeaders: [SHADOW_HEADER], clearRouteCache: true },
      };
    },
    release(name, pool) {
      const candidate = routes.get(name)?.candidates.find((entry) => entry.pool === pool);
      if (candidate === undefined) return "unknown";
      const transition = candidate.state.release("operator");
      transitioned(name, pool, transition);
      if (transition !== undefined) shareSoon();
      return transition === undefined ? "not_quarantined" : "released";
    },
    status() {
      const now = deps.now();
      return [...routes].map(([name, route]) => ({
        route: name,
        stable: route.settings.stable,
        candidates: route.candidates.map(({ pool, weight, state }) => {
          const quarantine = state.quarantine;
          return {
            pool,
            weight,
            share: state.share(weight, route.settings),
            window: state.evidence,
            ownWindow: state.window,
            quarantine:
              quarantine === undefined
                ? null
                : {
                    source: quarantine.source,
                    ageSeconds: Math.max(0, Math.round((now - quarantine.since) / 1000)),
                    ...rounded(quarantine.verdict),
                    reason: quarantine.verdict.reason,
                    evidence: quarantine.evidence,
                    healthyProbes: quarantine.healthyProbes,
                  },
          };
        }),
        shadow: route.shadow?.report() ?? null,
      }));
    },
  };
}

/**
 * The pool for this request: a point in [0, 1) (the tenant's own, so its conversation stays on one
 * model version; a fresh draw for anonymous requests, which have none to keep) walked over the
 * candidates' current shares; past them, the stable pool.
 */
function choosePool(route: Route, exchange: Exchange, random: () => number): string {
  const { settings } = route;
  const point = settings.sticky === "tenant" && exchange.tenant !== "anonymous" ? unitHash(exchange.tenant) : random();
  let edge = 0;
  for (const candidate of route.candidates) {
    edge += candidate.state.share(candidate.weight, settings);
    if (point < edge) return candidate.pool;
  }
  return settings.stable;
}

/**
 * What an answer says of the pool that gave it; undefined when it says nothing (cancelled, or the
 * guard answered before the upstream did: a shed or a cache hit is no pool's doing).
 */
function answerKind(exchange: Exchange, outcome: Outcome): AnswerKind | undefined {
  if (outcome.cancelled) return undefined;
  if (exchange.contract === "violated") return "violated";
  if (outcome.answeredBy !== "upstream") return undefined;
  return outcome.status !== undefined && outcome.status >= 500 ? "error" : "ok";
}

/**
 * The primary answer can be compared: the stable pool's own 2xx answer, which passed its contract,
 * delivered whole to the client. Not a streamed one: a side answer is read as one JSON document.
 */
function comparable(exchange: Exchange, outcome: Outcome): boolean {
  const { status } = outcome;
  return (
    !outcome.cancelled &&
    outcome.streamed !== true &&
    outcome.answeredBy === "upstream" &&
    status !== undefined &&
    status >= 200 &&
    status <= 299 &&
    exchange.contract === "passed"
  );
}

/** Headers that are the connection's, Envoy's or the guard's, not the request's: a side request sets its own. */
const NOT_FORWARDED = new Set([
  "host",
  "connection",
  "keep-alive",
  "te",
  "upgrade",
  "transfer-encoding",
  "content-length",
  "accept-encoding",
  "x-request-id",
  "traceparent",
  "tracestate",
  SHADOW_HEADER,
]);

function forwardable(headers: HeaderMap, poolHeader: string): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of headers) {
    if (name.startsWith(":") || name.startsWith("x-envoy-") || name.startsWith("x-forwarded-")) continue;
    if (NOT_FORWARDED.has(name) || name === poolHeader) continue;
    kept[name] = value;
  }
  return kept;
}

function sameSecret(given: string, secret: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The side requests' sender: through Envoy's listener, the pool and this guard's secret in x-guard-shadow. */
function throughEnvoy(envoyUrl: string | undefined, secret: string): SideSender {
  return async (request, signal) => {
    // Config validation requires the URL for a route that compares (config/checks.ts).
    if (envoyUrl === undefined) throw new Error("canary.envoyUrl is not set");
    const response = await fetch(`${envoyUrl}${request.path}`, {
      method: request.method,
      headers: { ...request.headers, [SHADOW_HEADER]: `${request.route} ${request.pool} ${secret}` },
      ...(request.method === "GET" || request.method === "HEAD" ? {} : { body: request.body }),
      signal,
    });
    return { status: response.status, body: await boundedText(response) };
  };
}

/** A side answer's most bytes: Envoy's default buffer limit, what a client's answer could be checked at. */
const MAX_SIDE_ANSWER_BYTES = 8 * 1024 * 1024;

/** The body as text, read no further than MAX_SIDE_ANSWER_BYTES (a runaway answer is an error, not memory). */
async function boundedText(response: Response): Promise<string> {
  const reader = response.body?.getReader();
  if (reader === undefined) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_SIDE_ANSWER_BYTES) {
      await reader.cancel();
      throw new Error(`side answer larger than ${MAX_SIDE_ANSWER_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** FNV-1a of the text, as a point in [0, 1). */
function unitHash(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) / 2 ** 32;
}

function rounded(verdict: { rate: number; lowerBound: number; max: number }) {
  const round = (value: number): number => Math.round(value * 10_000) / 10_000;
  return { rate: round(verdict.rate), lowerBound: round(verdict.lowerBound), max: verdict.max };
}

function canaryMetrics(deps: StageDeps, routesNow: () => ReadonlyMap<string, Route>) {
  const registers = [deps.registry];
  shadowFieldMetrics(registers, routesNow);
  new Gauge({
    name: "guard_canary_quarantined",
    help: "1 while a candidate pool is quarantined (out of traffic but its probe share), else 0.",
    labelNames: ["route", "pool"],
    registers,
    collect() {
      this.reset();
      for (const [route, { candidates }] of routesNow())
        for (const { pool, state } of candidates) this.set({ route, pool }, state.quarantine === undefined ? 0 : 1);
    },
  });
  new Gauge({
    name: "guard_canary_share",
    help: "Share of the route's requests a candidate pool gets now (its weight, or the probe share while quarantined).",
    labelNames: ["route", "pool"],
    registers,
    collect() {
      this.reset();
      for (const [route, { settings, candidates }] of routesNow())
        for (const { pool, weight, state } of candidates) this.set({ route, pool }, state.share(weight, settings));
    },
  });
  return {
    answers: new Counter({
      name: "guard_canary_answers_total",
      help: "Answers of a rollout route's pools by what they showed: ok, violated (the contract), error (upstream 5xx).",
      labelNames: ["route", "pool", "kind"],
      registers,
    }),
    quarantines: new Counter({
      name: "guard_canary_quarantines_total",
      help: "Candidate pools taken out of traffic, by the rate that crossed its maximum and who decided (local: this sidecar, fleet: another, through canary.redis).",
      labelNames: ["route", "pool", "reason", "source"],
      registers,
    }),
    shadowSamples: new Counter({
      name: "guard_shadow_samples_total",
      help: "Requests drawn for shadow comparison, by result: compared, dropped (every slot taken), incomplete (no comparable primary answer, or a side request failed).",
      labelNames: ["route", "pool", "result"],
      registers,
    }),
    shadowSide: new Counter({
      name: "guard_shadow_side_requests_total",
      help: "The guard's own side requests of shadow comparison, by pool (the candidate, or the stable pool for the noise) and result: ok, error, timeout.",
      labelNames: ["route", "pool", "result"],
      registers,
    }),
  };
}

/**
 * Per compared field, from the comparison windows at each scrape: `pool` is the candidate (against
 * the stable answers) or the stable pool (stable against stable: the noise). Fields are the
 * contract's (at most MAX_SHADOW_FIELDS), pools the config's.
 */
function shadowFieldMetrics(registers: Registry[], routesNow: () => ReadonlyMap<string, Route>): void {
  const each = (
    visit: (
      labels: { route: string; pool: string; field: string },
      field: ShadowReport["fields"][number],
      stable: string,
    ) => void,
  ) => {
    for (const [route, { settings, shadow }] of routesNow()) {
      if (shadow === undefined) continue;
      const report = shadow.report();
      for (const field of report.fields)
        visit({ route, pool: report.pool, field: field.field }, field, settings.stable);
    }
  };
  new Gauge({
    name: "guard_shadow_field_agreement_ratio",
    help: "Share of a field's latest comparisons that agree (exactly, or within the numeric tolerance); pool = the stable pool: stable against stable.",
    labelNames: ["route", "pool", "field"],
    registers,
    collect() {
      this.reset();
      each((labels, field, stable) => {
        this.set(labels, field.candidate.agreementRate);
        this.set({ ...labels, pool: stable }, field.noise.agreementRate);
      });
    },
  });
  new Gauge({
    name: "guard_shadow_field_difference_mean",
    help: "Mean signed difference (other - primary) of a numeric field over its latest comparisons: a candidate's bias.",
    labelNames: ["route", "pool", "field"],
    registers,
    collect() {
      this.reset();
      each((labels, field, stable) => {
        if (field.candidate.differences !== undefined) this.set(labels, field.candidate.differences.mean);
        if (field.noise.differences !== undefined) this.set({ ...labels, pool: stable }, field.noise.differences.mean);
      });
    },
  });
  new Gauge({
    name: "guard_shadow_field_difference_abs",
    help: "Quantiles of the absolute difference of a numeric field over its latest comparisons.",
    labelNames: ["route", "pool", "field", "quantile"],
    registers,
    collect() {
      this.reset();
      each((labels, field, stable) => {
        for (const [side, pool] of [
          [field.candidate, labels.pool],
          [field.noise, stable],
        ] as const) {
          const differences = side.differences;
          if (differences === undefined) continue;
          for (const [quantile, value] of [
            ["0.5", differences.p50],
            ["0.9", differences.p90],
            ["0.99", differences.p99],
          ] as const)
            this.set({ ...labels, pool, quantile }, value);
        }
      });
    },
  });
  new Gauge({
    name: "guard_shadow_field_differs",
    help: "1 when the candidate's field differs from the stable pool's beyond the stable-vs-stable noise, with confidence (docs/rollout.md, \"Shadow comparison\").",
    labelNames: ["route", "pool", "field"],
    registers,
    collect() {
      this.reset();
      each((labels, field) => this.set(labels, field.verdict.differs ? 1 : 0));
    },
  });
}
