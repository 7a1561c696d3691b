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
  Outcome,
  ResponseInfo,
  Stage,
  StageConfig,
  StageDeps,
  StageRun,
  Step,
} from "../types.js";
import { completionFrom } from "./completion.js";
import { type AdmissionConfig, DEADLINE_MARGIN_MS, type RouteAdmissionConfig } from "./config.js";
import { AdmissionController, type Decision, type Queued, type Scheduler, type Ticket } from "./controller.js";
import { type AdmissionMetrics, createAdmissionMetrics } from "./metrics.js";
import type { Priority } from "./priority.js";
import { shedReply } from "./reply.js";

export interface AdmissionStageDeps extends StageDeps {
  /** Timers for queue deadlines; real timers unless a test injects virtual ones. */
  readonly schedule?: Scheduler;
}

export interface AdmissionStage extends Stage {
  /** One controller per pool (routes naming the same pool share it), for admin endpoints and tests. */
  readonly pools: ReadonlyMap<string, AdmissionController>;
}

const realTimers: Scheduler = (delayMs, fn) => {
  const timer = setTimeout(fn, delayMs);
  // A queue deadline alone must not keep a draining process alive.
  timer.unref();
  return () => clearTimeout(timer);
};

const WAIT_RESULT: Readonly<Record<string, string>> = {
  "shed.queue_timeout": "timeout",
  "shed.circuit_open": "circuit_open",
};

export function createAdmissionStage(
  config: StageConfig<AdmissionConfig, RouteAdmissionConfig>,
  deps: AdmissionStageDeps,
): AdmissionStage {
  const settings = config.section;
  const controllerDeps = { now: deps.now, schedule: deps.schedule ?? realTimers };
  const pools = new Map<string, AdmissionController>();
  const routePools = new Map<string, AdmissionController>();
  for (const [route, { enabled, pool }] of config.routes) {
    if (!enabled) continue;
    let controller = pools.get(pool);
    if (controller === undefined) {
      controller = new AdmissionController(settings, controllerDeps);
      pools.set(pool, controller);
    }
    routePools.set(route, controller);
  }
  const metrics = createAdmissionMetrics(deps.registry, pools);
  const poolOf = new Map<AdmissionController, string>([...pools].map(([name, controller]) => [controller, name]));
  const decisions = createDecisionLog(deps.log, deps.now);

  return {
    name: "admission",
    pools,
    start(exchange: Exchange): StageRun | undefined {
      const controller = routePools.get(exchange.route.name);
      if (controller === undefined) return undefined;
      const pool = poolOf.get(controller) ?? "default";
      return new AdmissionRun(exchange, controller, pool, settings, deps, metrics, decisions);
    },
  };
}

type RunState =
  | { readonly kind: "waiting_for_request" }
  | { readonly kind: "queued"; readonly queued: Queued; readonly resolve: (step: Step) => void }
  | { readonly kind: "admitted"; readonly ticket: Ticket }
  | { readonly kind: "finished" };

class AdmissionRun implements StageRun {
  #state: RunState = { kind: "waiting_for_request" };
  readonly #priority: Priority;

  constructor(
    readonly exchange: Exchange,
    readonly controller: AdmissionController,
    readonly pool: string,
    readonly settings: AdmissionConfig,
    readonly deps: StageDeps,
    readonly metrics: AdmissionMetrics,
    readonly decisions: DecisionLog,
  ) {
    this.#priority = exchange.priority;
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
        reply: shedReply({ reason: "shed.cancelled", retryAfterSeconds: 1 }, this.#priority, this.#format()),
      });
      return;
    }
    if (state.kind !== "admitted") return;
    const { ticket } = state;
    // A request admitted at admission.defaultCost had no estimate for its real cost to correct.
    const actual = ticket.cost === this.exchange.cost ? actualCost(this.exchange) : undefined;
    const route = this.exchange.route.name;
    this.metrics.releasedCost.inc(
      { priority: this.#priority, route, basis: actual === undefined ? "estimate" : "actual" },
      actual ?? ticket.cost,
    );
    if (actual !== undefined) this.metrics.costRatio.observe({ route }, actual / ticket.cost);
    const ratio = this.controller.release(
      ticket,
      completionFrom(outcome, {
        heldMs: this.deps.now() - ticket.admittedAt,
        slowCallMs: this.settings.circuit.slowCallMs,
        predictedLatencyMs: this.exchange.predictedLatencyMs,
        actualCost: actual,
      }),
    );
    if (ratio !== undefined) this.metrics.latencyRatio.observe({ pool: this.pool }, ratio);
  }

  #admit(): Step | Promise<Step> {
    if (this.#state.kind !== "waiting_for_request") return { type: "continue" };
    const request = { cost: this.#cost(), priority: this.#priority, tenant: this.#tenant() };
    const attempt = this.controller.acquire(request, (decision) => this.#settled(decision));
    if (attempt.kind !== "queued") return this.#stepFor(attempt, 0);
    this.exchange.extendDeadline(attempt.maxWaitMs + DEADLINE_MARGIN_MS);
    return new Promise<Step>((resolve) => {
      this.#state = { kind: "queued", queued: attempt, resolve };
    });
  }

  #settled(decision: Decision): void {
    const state = this.#state;
    if (state.kind !== "queued") return;
    const waited = decision.kind === "admitted" ? decision.ticket.waitedMs : decision.waitedMs;
    const result = decision.kind === "admitted" ? "admitted" : (WAIT_RESULT[decision.reason] ?? "shed");
    this.metrics.queueWait.observe({ priority: this.#priority, result }, waited / 1000);
    state.resolve(this.#stepFor(decision, waited));
  }

  #stepFor(decision: Decision, waitedMs: number): Step {
    const route = this.exchange.route.name;
    if (decision.kind === "shed") {
      this.#state = { kind: "finished" };
      this.metrics.shed.inc({ reason: decision.reason, priority: this.#priority, route });
      this.decisions("shed", this.exchange.request.requestId, route, {
        reason: decision.reason,
        priority: this.#priority,
        pool: this.pool,
        status: ANSWERS[decision.reason].status,
        waitedMs: Math.round(waitedMs),
      });
      return { type: "reply", reply: shedReply(decision, this.#priority, this.#format()) };
    }
    this.#state = { kind: "admitted", ticket: decision.ticket };
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
