// The admission pipeline stage: prices and classifies each request, admits it against its pool's
// adaptive budget (possibly after holding it in the queue), sheds it with an explicit answer, and
// returns the budget it held exactly once when the exchange ends, counting its real cost when known.
import { actualCost } from "../actual-cost.js";
import { ANSWERS } from "../answer-catalogue.js";
import { answerFormatFor } from "../answers.js";
import { createDecisionLog, type DecisionLog } from "../decisions.js";
import { responseStream } from "../response-shape.js";
import type {
  ChunkStep,
  Exchange,
  HeaderMap,
  Outcome,
  ResponseInfo,
  Stage,
  StageConfig,
  StageDeps,
  StageRun,
  Step,
} from "../types.js";
import { completionFrom, upstreamServiceMs } from "./completion.js";
import { type AdmissionConfig, DEADLINE_MARGIN_MS, type RetriesConfig, type RouteAdmissionConfig } from "./config.js";
import { AdmissionController, type Decision, type Queued, type Scheduler, type Ticket } from "./controller.js";
import { type AdmissionMetrics, createAdmissionMetrics } from "./metrics.js";
import type { Priority } from "./priority.js";
import { shedReply } from "./reply.js";

export interface AdmissionStageDeps extends StageDeps {
  /** Timers for queue deadlines; real timers unless a test injects virtual ones. */
  readonly schedule?: Scheduler;
  /** Spreads Retry-After; Math.random unless a test pins it. */
  readonly random?: () => number;
}

export interface AdmissionStage extends Stage {
  /** One controller per admission domain (createAdmissionStage), for admin endpoints and tests. */
  readonly pools: ReadonlyMap<string, AdmissionController>;
}

/** The admission stage's configuration, with each route's complexity tiers (empty: not tiered). */
export interface AdmissionStageConfig extends StageConfig<AdmissionConfig, RouteAdmissionConfig> {
  readonly tiers: ReadonlyMap<string, readonly string[]>;
}

const realTimers: Scheduler = (delayMs, fn) => {
  const timer = setTimeout(fn, delayMs);
  // A queue deadline alone must not keep a draining process alive.
  timer.unref();
  return () => clearTimeout(timer);
};

/** Set by Envoy's router on every answer the upstream sent (unless suppress_envoy_headers). */
const UPSTREAM_SERVICE_TIME = "x-envoy-upstream-service-time";

const WAIT_RESULT: Readonly<Record<string, string>> = {
  "shed.queue_timeout": "timeout",
  "shed.circuit_open": "circuit_open",
};

/** The domain a request is admitted in: its name (the `pool` label) and controller. */
interface Domain {
  readonly name: string;
  readonly controller: AdmissionController;
}

/** A route's domain for a request, by the tier the complexity stage picked (if any). */
type DomainOfTier = (tier: string | undefined) => Domain;

export function createAdmissionStage(config: AdmissionStageConfig, deps: AdmissionStageDeps): AdmissionStage {
  const settings = config.section;
  const schedule = deps.schedule ?? realTimers;
  const controllerDeps = {
    now: deps.now,
    schedule,
    ...(deps.random === undefined ? {} : { random: deps.random }),
  };
  const pools = new Map<string, AdmissionController>();
  const domain = (name: string): Domain => {
    let controller = pools.get(name);
    if (controller === undefined) {
      controller = new AdmissionController(settings, controllerDeps);
      pools.set(name, controller);
    }
    return { name, controller };
  };
  // A route's domain is its pool (the route's own name unless the operator groups routes), split
  // per complexity tier when tiers reach their own clusters: a domain is one upstream, and its
  // budget, queue and circuit answer for that upstream only.
  const routeDomains = new Map<string, DomainOfTier>();
  for (const [route, { enabled, pool = route, splitTiers }] of config.routes) {
    if (!enabled) continue;
    const tiers = config.tiers.get(route) ?? [];
    const [firstTier] = tiers;
    if (!splitTiers || firstTier === undefined || tiers.length < 2) {
      const only = domain(pool);
      routeDomains.set(route, () => only);
      continue;
    }
    const byTier = new Map(tiers.map((tier) => [tier, domain(`${pool}/${tier}`)]));
    const first = domain(`${pool}/${firstTier}`);
    // A tiered route whose request was not priced (the complexity stage failed open) goes to the
    // first tier's cluster: Envoy's route table falls through to it without a tier header.
    routeDomains.set(route, (tier) => (tier === undefined ? undefined : byTier.get(tier)) ?? first);
  }
  const metrics = createAdmissionMetrics(deps.registry, pools);
  const decisions = createDecisionLog(deps.log, deps.now);

  return {
    name: "admission",
    pools,
    start(exchange: Exchange): StageRun | undefined {
      const domainOf = routeDomains.get(exchange.route.name);
      if (domainOf === undefined) return undefined;
      return new AdmissionRun(exchange, domainOf, settings, { ...deps, schedule }, metrics, decisions);
    },
  };
}

type RunState =
  | { readonly kind: "waiting_for_request" }
  | {
      readonly kind: "queued";
      readonly domain: Domain;
      readonly queued: Queued;
      readonly resolve: (step: Step) => void;
    }
  | {
      readonly kind: "admitted";
      readonly domain: Domain;
      readonly ticket: Ticket;
      /** Cancels the admission.maxHoldMs timer. */
      readonly cancelHold: () => void;
    }
  | { readonly kind: "finished" };

class AdmissionRun implements StageRun {
  #state: RunState = { kind: "waiting_for_request" };
  readonly #priority: Priority;
  /** The client's retry of a call it sent before (admission.retries.headers). */
  readonly #retry: boolean;

  constructor(
    readonly exchange: Exchange,
    readonly domainOf: DomainOfTier,
    readonly settings: AdmissionConfig,
    readonly deps: StageDeps & { readonly schedule: Scheduler },
    readonly metrics: AdmissionMetrics,
    readonly decisions: DecisionLog,
  ) {
    this.#priority = exchange.priority;
    this.#retry = isRetry(exchange.request.headers, settings.retries.headers);
  }

  onRequestHeaders(): Step | Promise<Step> {
    // When an earlier stage prices the request from its body, admit at the body hook, once the cost
    // is set; otherwise at once, without asking for a body nobody reads (Envoy would buffer it, and
    // one over its buffer limit would be refused).
    if (this.exchange.costAwaitsBody === true && !this.exchange.request.endOfStream) {
      return { type: "continue", needs: { requestBody: true, responseHeaders: true } };
    }
    return this.#admit();
  }

  onRequestBody(): Step | Promise<Step> {
    return this.#admit();
  }

  /**
   * A streamed answer keeps the upstream busy until its last event, not its headers: the stream
   * passes through this stage so the budget is returned when it ends (or the client leaves).
   */
  onResponseHeaders(response: ResponseInfo): Step {
    const streamed = this.#state.kind === "admitted" && responseStream(response.headers, this.exchange) !== undefined;
    return { type: "continue", responseBody: streamed ? "stream" : "none" };
  }

  onResponseChunk(chunk: Uint8Array): ChunkStep {
    return { type: "forward", bytes: chunk };
  }

  onEnd(outcome: Outcome): void {
    const state = this.#state;
    this.#state = { kind: "finished" };
    if (state.kind === "queued") {
      const waited = state.queued.cancel();
      if (waited !== undefined)
        this.metrics.queueWait.observe({ priority: this.#priority, result: "cancelled" }, waited / 1000);
      // Nobody reads this answer (the stream is gone), but the held hook must not hang.
      state.resolve({
        type: "reply",
        reply: shedReply({ reason: "shed.cancelled", retryAfterMs: 1_000 }, this.#priority, this.#format()),
      });
      return;
    }
    if (state.kind !== "admitted") return;
    const { ticket, domain } = state;
    state.cancelHold();
    // A request admitted at admission.defaultCost had no estimate for its real cost to correct.
    const actual = ticket.cost === this.exchange.cost ? actualCost(this.exchange) : undefined;
    const route = this.exchange.route.name;
    this.metrics.releasedCost.inc(
      { priority: this.#priority, route, basis: actual === undefined ? "estimate" : "actual" },
      actual ?? ticket.cost,
    );
    if (actual !== undefined) this.metrics.costRatio.observe({ route }, actual / ticket.cost);
    const ratio = domain.controller.release(
      ticket,
      completionFrom(outcome, {
        heldMs: this.deps.now() - ticket.admittedAt,
        slowCallMs: this.settings.circuit.slowCallMs,
        predictedLatencyMs: this.exchange.predictedLatencyMs,
        actualCost: actual,
        upstreamServiceMs: upstreamServiceMs(this.exchange.response?.headers.get(UPSTREAM_SERVICE_TIME)),
      }),
    );
    if (ratio !== undefined) this.metrics.latencyRatio.observe({ pool: domain.name }, ratio);
  }

  #admit(): Step | Promise<Step> {
    if (this.#state.kind !== "waiting_for_request") return { type: "continue" };
    // The tier is known by now (the complexity stage sets it at the same hook, earlier in line).
    const domain = this.domainOf(this.exchange.tier);
    const request = { cost: this.#cost(), priority: this.#priority, tenant: this.#tenant(), retry: this.#retry };
    const attempt = domain.controller.acquire(request, (decision) => this.#settled(decision));
    if (attempt.kind !== "queued") return this.#stepFor(domain, attempt, 0);
    this.exchange.extendDeadline(attempt.maxWaitMs + DEADLINE_MARGIN_MS);
    return new Promise<Step>((resolve) => {
      this.#state = { kind: "queued", domain, queued: attempt, resolve };
    });
  }

  #settled(decision: Decision): void {
    const state = this.#state;
    if (state.kind !== "queued") return;
    const waited = decision.kind === "admitted" ? decision.ticket.waitedMs : decision.waitedMs;
    const result = decision.kind === "admitted" ? "admitted" : (WAIT_RESULT[decision.reason] ?? "shed");
    this.metrics.queueWait.observe({ priority: this.#priority, result }, waited / 1000);
    state.resolve(this.#stepFor(state.domain, decision, waited));
  }

  #stepFor(domain: Domain, decision: Decision, waitedMs: number): Step {
    const route = this.exchange.route.name;
    if (this.#retry) this.metrics.retries.inc({ pool: domain.name, result: decision.kind });
    if (decision.kind === "shed") {
      this.#state = { kind: "finished" };
      this.metrics.shed.inc({ reason: decision.reason, priority: this.#priority, route });
      this.decisions("shed", this.exchange, route, {
        reason: decision.reason,
        priority: this.#priority,
        pool: domain.name,
        status: ANSWERS[decision.reason].status,
        waitedMs: Math.round(waitedMs),
      });
      return { type: "reply", reply: shedReply(decision, this.#priority, this.#format()) };
    }
    const cancelHold = this.deps.schedule(this.settings.maxHoldMs, () => this.#expireHold());
    this.#state = { kind: "admitted", domain, ticket: decision.ticket, cancelHold };
    this.metrics.admittedCost.inc({ priority: this.#priority, route }, decision.ticket.cost);
    return {
      type: "continue",
      edits: {
        metadata: {
          admission: { priority: this.#priority, cost: decision.ticket.cost, wait_ms: Math.round(waitedMs) },
        },
      },
      needs: { responseHeaders: true },
    };
  }

  /** The exchange outlived admission.maxHoldMs: its budget goes back, and the upstream is told nothing. */
  #expireHold(): void {
    const state = this.#state;
    if (state.kind !== "admitted") return;
    this.#state = { kind: "finished" };
    const { ticket, domain } = state;
    domain.controller.release(ticket, {});
    const route = this.exchange.route.name;
    this.metrics.releasedCost.inc({ priority: this.#priority, route, basis: "expired" }, ticket.cost);
    this.metrics.holdExpired.inc({ pool: domain.name });
    this.deps.log.warn(
      { requestId: this.exchange.request.requestId, route, pool: domain.name, heldMs: this.settings.maxHoldMs },
      "admission: an exchange held its budget past admission.maxHoldMs; returned",
    );
  }

  #format() {
    return answerFormatFor(this.exchange.request.path);
  }

  #cost(): number {
    const cost = this.exchange.cost;
    if (cost === undefined) return this.settings.defaultCost;
    if (Number.isFinite(cost) && cost > 0) return cost;
    this.metrics.badInput.inc({ kind: "invalid_cost" });
    return this.settings.defaultCost;
  }

  #tenant(): string {
    return this.exchange.tenant;
  }
}

/** Whether a header says the client sent this call before. */
function isRetry(headers: HeaderMap, retryHeaders: RetriesConfig["headers"]): boolean {
  return retryHeaders.some(({ name, firstAttempt }) => {
    const value = Number(headers.get(name));
    return Number.isInteger(value) && value > firstAttempt;
  });
}
