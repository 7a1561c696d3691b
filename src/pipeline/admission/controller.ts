// One pool's admission controller: the adaptive budget, the per-class queues and the circuit breaker,
// with in-flight cost accounting. Pure logic on an injected clock and scheduler, so the stage (real
// timers) and the simulation (virtual timers) drive the very same code.
import { CircuitBreaker, type CircuitState, type Verdict } from "./circuit.js";
import type { AdmissionConfig, ClassesConfig } from "./config.js";
import { DemandGauge } from "./demand.js";
import { DrrQueue } from "./drr.js";
import { GradientLimiter } from "./limiter.js";
import { PRIORITIES, type Priority, rank } from "./priority.js";
import { RetryBudget } from "./retry-budget.js";

type ClassSettings = ClassesConfig[Priority];

/** Weight of the newest request in the typical cost behind the per-request charge. */
const TYPICAL_COST_SMOOTHING = 0.02;

/**
 * Largest multiple of the typical cost one request adds to it: a real shift to larger requests
 * still moves the typical cost (by up to 18 % per request), an outlier no more than that. At 4 the
 * simulation's heavy-tailed sizes pulled the typical cost down enough to cost critical requests at
 * 4× overload (99.0 → 98.9 % kept).
 */
const TYPICAL_COST_CLIP = 10;

/**
 * Shortest queue wait (unless maxWaitMs is shorter): against an upstream answering in 20 ms, half a
 * round trip is 10 ms, less than the host's own scheduling noise, and a cold guard, whose budget
 * slow start has not grown yet, shed a burst of concurrent requests it could have served in time.
 */
const MIN_WAIT_MS = 100;

/**
 * Arrivals ÷ completions (in budget units, over the last few seconds) at or below which a queue is a
 * burst rather than overload, and waiters may wait their class's whole maxWaitMs. At exactly the
 * upstream's capacity the ratio stays near 1 with bursts of arrivals around it; at 2× it reads 2.
 */
const PATIENT_DEMAND = 1.5;

/**
 * Time constant of the arrival and completion rates behind PATIENT_DEMAND: several round trips, at
 * least a second, so one burst does not read as overload and sustained overload shows within seconds.
 */
const DEMAND_ROUND_TRIPS = 8;
const MIN_DEMAND_TIME_CONSTANT_MS = 1_000;

/** Shortest Retry-After: a client told "now" would be back before anything changed. */
const MIN_RETRY_AFTER_MS = 100;

/** Retry-After before the pool has seen a single upstream latency. */
const UNKNOWN_LATENCY_RETRY_MS = 1_000;

/** Largest head start in the queue, as a share of the class's max wait (see #dueAt). */
const MAX_HEAD_START = 0.5;

export interface AdmissionRequest {
  readonly cost: number;
  readonly priority: Priority;
  /** Fairness key within a class; any stable string. */
  readonly tenant: string;
  /** The client's retry of a call it already sent (see admission.retries.headers). */
  readonly retry?: boolean;
}

export interface Ticket {
  /** The request's own cost (its size, as priced). */
  readonly cost: number;
  /** What it holds of the budget: its cost plus the per-request charge at admission. */
  readonly charge: number;
  readonly priority: Priority;
  readonly admittedAt: number;
  readonly waitedMs: number;
  /** Admitted as a half-open circuit probe: its outcome decides the circuit. */
  readonly probe: boolean;
  /** Requests already in flight when it was admitted, and the pool's admission count after it. */
  readonly othersAtAdmission: number;
  readonly admissionSerial: number;
}

export type ShedReason =
  | "shed.overload"
  | "shed.queue_full"
  | "shed.queue_timeout"
  | "shed.circuit_open"
  | "shed.retry_budget";

export type Decision =
  | { readonly kind: "admitted"; readonly ticket: Ticket }
  | {
      readonly kind: "shed";
      /** Its status and body come from the answers catalogue (src/pipeline/answers.ts). */
      readonly reason: ShedReason;
      /** When a retry has a chance; answered as retry-after-ms and, rounded up, Retry-After. */
      readonly retryAfterMs: number;
      readonly waitedMs: number;
    };

export interface Queued {
  readonly kind: "queued";
  readonly maxWaitMs: number;
  /** Withdraws the waiter (stream cancelled). Returns the time it waited, or undefined if already settled. */
  cancel(): number | undefined;
}

export type Attempt = Decision | Queued;

/** What a finished request tells the controller. */
export interface Completion {
  /** The upstream's health as shown by this request; absent when it showed nothing (cancelled early). */
  readonly verdict?: Verdict;
  /** Present when the upstream answered normally, or timed out (censored): feeds the adaptive limit. */
  readonly latencyMs?: number;
  /**
   * latencyMs is a lower bound: the call timed out, or its client gave up before the answer began.
   * The limit counts it only when even the bound shows a slow-down, so timeouts lower the limit
   * instead of leaving it to the calls that were fast enough to finish.
   */
  readonly censored?: boolean;
  readonly predictedLatencyMs?: number;
  /** The request's real cost once the upstream reported its output; the limit learns with it. */
  readonly actualCost?: number;
}

/** Runs fn after delayMs (virtual or real time); returns a function that cancels it. */
export type Scheduler = (delayMs: number, fn: () => void) => () => void;

export interface ControllerDeps {
  readonly now: () => number;
  readonly schedule: Scheduler;
  /** Uniform in [0, 1): spreads Retry-After (Math.random unless a test or the simulation seeds it). */
  readonly random?: () => number;
}

interface Waiter {
  readonly request: AdmissionRequest;
  /** The budget it will hold (Ticket.charge): queues and fairness count in budget units. */
  readonly cost: number;
  readonly tenant: string;
  readonly enqueuedAt: number;
  readonly dueAt: number;
  readonly settle: (decision: Decision) => void;
  cancelTimer: () => void;
}

export class AdmissionController {
  readonly #config: AdmissionConfig;
  readonly #deps: ControllerDeps;
  readonly #limiter: GradientLimiter;
  readonly #circuit: CircuitBreaker;
  readonly #retries: RetryBudget;
  readonly #random: () => number;
  readonly #queues: Record<Priority, DrrQueue<Waiter>>;
  readonly #released = new WeakSet<Ticket>();
  #inFlight = 0;
  #inFlightCount = 0;
  #admissions = 0;
  #typicalCost: number | undefined;
  readonly #demand = new DemandGauge();

  constructor(config: AdmissionConfig, deps: ControllerDeps) {
    this.#config = config;
    this.#deps = deps;
    this.#limiter = new GradientLimiter(config.limit);
    this.#circuit = new CircuitBreaker(config.circuit);
    this.#retries = new RetryBudget(config.retries);
    this.#random = deps.random ?? Math.random;
    this.#queues = {
      critical: new DrrQueue(config.drrQuantum),
      standard: new DrrQueue(config.drrQuantum),
      sheddable: new DrrQueue(config.drrQuantum),
    };
  }

  get limit(): number {
    return this.#limiter.limit;
  }

  get inFlightCost(): number {
    return this.#inFlight;
  }

  get smoothedRatio(): number | undefined {
    return this.#limiter.smoothedRatio;
  }

  queueLength(priority: Priority): number {
    return this.#queues[priority].length;
  }

  circuitState(): CircuitState {
    return this.#circuit.state(this.#deps.now());
  }

  /**
   * Admits, sheds or queues a request. A queued request is settled later through onSettled
   * (admitted when budget frees up, shed on timeout or when the circuit opens) unless cancelled.
   */
  acquire(request: AdmissionRequest, onSettled: (decision: Decision) => void): Attempt {
    const now = this.#deps.now();
    const charge = this.#chargeOf(request.cost);
    this.#demand.arrive(charge, now, this.#demandTimeConstantMs());
    const circuit = this.#circuit.state(now);
    if (circuit !== "closed") {
      const permit = this.#circuit.tryAcquire(now);
      // Probes skip the budget: they are few, and the point is to learn whether the upstream is back.
      if (permit.allowed) return { kind: "admitted", ticket: this.#admit(request, charge, now, 0, permit.probe) };
      return this.#shed("shed.circuit_open", 0, permit.retryAfterMs);
    }
    const settings = this.#config.classes[request.priority];
    const maxWaitMs = this.#maxWaitMs(settings);
    if (!this.#higherOrEqualWaiting(request.priority) && this.#fits(charge, request.priority)) {
      return { kind: "admitted", ticket: this.#admit(request, charge, now, 0, false) };
    }
    // Past this point the request would wait: the upstream is saturated, and a retry adds to its
    // work unless the budget covers it. Critical traffic comes from trusted sources only (identity)
    // and is kept whole before anything else: its retries are not rationed.
    if (request.retry === true && request.priority !== "critical" && !this.#retries.tryWithdraw(now))
      return this.#shed("shed.retry_budget", 0);
    if (maxWaitMs === 0) return this.#shed("shed.overload", 0);
    const queue = this.#queues[request.priority];
    if (queue.length >= settings.maxQueue) {
      // A full queue sheds from the tenant with the longest backlog, so a flood cannot crowd others out.
      const evicted = queue.evictForTenant(request.tenant);
      if (evicted === undefined) return this.#shed("shed.queue_full", 0);
      evicted.cancelTimer();
      evicted.settle(this.#shed("shed.queue_full", now - evicted.enqueuedAt));
    }
    // Answer now what the queue would answer later anyway: a fast 429 beats a slow one.
    if (this.#estimatedWaitMs(request, charge) > maxWaitMs) return this.#shed("shed.overload", 0);

    const waiter: Waiter = {
      request,
      cost: charge,
      tenant: request.tenant,
      enqueuedAt: now,
      dueAt: this.#dueAt(request.cost, now, maxWaitMs),
      settle: onSettled,
      cancelTimer: () => undefined,
    };
    queue.push(waiter);
    waiter.cancelTimer = this.#deps.schedule(maxWaitMs, () => {
      if (!queue.remove(waiter)) return;
      const waited = this.#deps.now() - waiter.enqueuedAt;
      waiter.settle(this.#shed("shed.queue_timeout", waited));
    });
    return {
      kind: "queued",
      maxWaitMs,
      cancel: () => {
        if (!queue.remove(waiter)) return undefined;
        waiter.cancelTimer();
        return this.#deps.now() - waiter.enqueuedAt;
      },
    };
  }

  /**
   * Returns a ticket's cost to the budget (idempotent: a second release of the same ticket is a
   * no-op) and learns from the completion. Returns the normalised latency ratio when it was sampled.
   */
  release(ticket: Ticket, completion: Completion): number | undefined {
    if (this.#released.has(ticket)) return undefined;
    this.#released.add(ticket);
    const now = this.#deps.now();
    this.#demand.complete(ticket.charge, now, this.#demandTimeConstantMs());
    const inFlightBefore = this.#inFlight;
    this.#inFlightCount -= 1;
    // Float sums drift; an empty pool is exactly empty.
    this.#inFlight = this.#inFlightCount === 0 ? 0 : this.#inFlight - ticket.charge;

    if (completion.verdict !== undefined) {
      this.#circuit.record(completion.verdict, ticket.probe, now);
      if (this.#circuit.state(now) === "open") this.#failQueued();
    } else if (ticket.probe) {
      this.#circuit.abandonProbe(now);
    }

    let ratio: number | undefined;
    if (completion.latencyMs !== undefined) {
      // The budget got back exactly what the ticket held (above); what the upstream did is learned
      // at its real size, so the latency per cost unit is not skewed by the estimate's error.
      const cost = completion.actualCost ?? ticket.cost;
      const sample = {
        cost,
        latencyMs: completion.latencyMs,
        censored: completion.censored === true,
        ...(completion.predictedLatencyMs === undefined ? {} : { predictedLatencyMs: completion.predictedLatencyMs }),
      };
      const typicalCharge = (1 + this.#config.requestWeight) * (this.#typicalCost ?? ticket.cost);
      ratio = this.#limiter.observe(
        { ...sample, overlap: this.#overlapOf(ticket) },
        inFlightBefore,
        now,
        typicalCharge,
      );
    }
    this.#admitWaiting(now);
    return ratio;
  }

  /**
   * Budget a request holds: its cost plus requestWeight × the typical (smoothed mean) cost. A server
   * limited by slots (max batch size) rather than by work is full at a request count whatever the
   * sizes; charging every request a share of a typical one keeps the number of requests a budget
   * admits from swinging with the size mix (three large requests leaving slots idle, a dozen small
   * ones queueing inside the server), and changes little for a work-limited server.
   */
  #chargeOf(cost: number): number {
    const typical = this.#typicalCost;
    // Winsorised: one request counts as at most TYPICAL_COST_CLIP × the typical one. Unclipped, five
    // 8 MB junk bodies priced at 2M units each raised every later request's charge by ~160k (four
    // times the initial budget) and shed 9 of 10 small requests that followed.
    this.#typicalCost =
      typical === undefined
        ? cost
        : typical + TYPICAL_COST_SMOOTHING * (Math.min(cost, TYPICAL_COST_CLIP * typical) - typical);
    return cost + this.#config.requestWeight * this.#typicalCost;
  }

  #admit(request: AdmissionRequest, charge: number, now: number, waitedMs: number, probe: boolean): Ticket {
    const othersAtAdmission = this.#inFlightCount;
    this.#inFlight += charge;
    this.#inFlightCount += 1;
    this.#admissions += 1;
    this.#limiter.noteInFlight(this.#inFlight);
    if (request.retry !== true) this.#retries.deposit(now);
    return {
      cost: request.cost,
      charge,
      priority: request.priority,
      admittedAt: now,
      waitedMs,
      probe,
      othersAtAdmission,
      admissionSerial: this.#admissions,
    };
  }

  /** How many other requests shared the upstream with this one: 0 means it ran alone (unloaded). */
  #overlapOf(ticket: Ticket): number {
    return ticket.othersAtAdmission + (this.#admissions - ticket.admissionSerial);
  }

  #fits(charge: number, priority: Priority): boolean {
    // An empty pool admits anything, so a request costlier than the whole budget is not starved.
    if (this.#inFlightCount === 0) return true;
    return this.#inFlight + charge <= this.#config.classes[priority].share * this.#limiter.limit;
  }

  /**
   * The class's wait now: maxWaitLatencies of the upstream's recent latency, at least MIN_WAIT_MS,
   * at most maxWaitMs; the whole maxWaitMs while the pool is not overloaded (PATIENT_DEMAND).
   */
  #maxWaitMs({ maxWaitMs, maxWaitLatencies }: ClassSettings): number {
    const latency = this.#limiter.meanLatencyMs;
    if (latency === undefined) return maxWaitMs;
    // Arrivals no faster than completions: the queue is a burst the upstream is working off, and the
    // request is served if it waits; shedding it now only sends it back later as a retry.
    if (this.#demand.ratio(this.#deps.now(), this.#demandTimeConstantMs()) <= PATIENT_DEMAND) return maxWaitMs;
    return Math.min(maxWaitMs, Math.max(MIN_WAIT_MS, Math.ceil(maxWaitLatencies * latency)));
  }

  #demandTimeConstantMs(): number {
    return Math.max(MIN_DEMAND_TIME_CONSTANT_MS, DEMAND_ROUND_TRIPS * (this.#limiter.meanLatencyMs ?? 0));
  }

  #higherOrEqualWaiting(priority: Priority): boolean {
    return PRIORITIES.some((other) => rank(other) <= rank(priority) && this.#queues[other].length > 0);
  }

  /** Budget freed: admit waiters strictly by priority; DRR picks the tenant within a class. */
  #admitWaiting(now: number): void {
    for (;;) {
      const priority = PRIORITIES.find((candidate) => this.#queues[candidate].length > 0);
      if (priority === undefined) return;
      const queue = this.#queues[priority];
      const next = queue.peek();
      // Head-of-line blocking on purpose: letting a smaller lower-class request pass would starve
      // large high-class ones.
      if (next === undefined || !this.#fits(next.cost, priority)) return;
      queue.shift();
      next.cancelTimer();
      const ticket = this.#admit(next.request, next.cost, now, now - next.enqueuedAt, false);
      next.settle({ kind: "admitted", ticket });
    }
  }

  /**
   * Queue order within a class and tenant: earliest due first, due = arrival + the request's own
   * unloaded latency, at most half the class's max wait. A wait costs a small request more: latency
   * expectations (and SLOs) grow with size, so a request twice as large can wait its own service time
   * longer for the same relative slow-down, while FIFO makes small requests late behind large ones.
   * Only arrivals within half the class's max wait after a request can overtake it (no starvation);
   * before the guard has seen an unloaded latency, FIFO.
   */
  #dueAt(cost: number, now: number, maxWaitMs: number): number {
    const predicted = this.#limiter.predictUnloadedMs(cost);
    return predicted === undefined ? now : now + Math.min(MAX_HEAD_START * maxWaitMs, predicted);
  }

  /** The upstream is failing: nobody should wait for it. */
  #failQueued(): void {
    const now = this.#deps.now();
    for (const priority of PRIORITIES) {
      for (const waiter of this.#queues[priority].drain()) {
        waiter.cancelTimer();
        waiter.settle(this.#shed("shed.circuit_open", now - waiter.enqueuedAt));
      }
    }
  }

  /** Cost the upstream completes per ms at the current budget (Little's law); undefined before data. */
  #drainPerMs(): number | undefined {
    const latency = this.#limiter.meanLatencyMs;
    return latency === undefined ? undefined : this.#limiter.limit / latency;
  }

  #estimatedWaitMs({ priority, tenant }: AdmissionRequest, charge: number): number {
    const drain = this.#drainPerMs();
    if (drain === undefined) return 0;
    // Within its class DRR serves the request after its tenant's own backlog, not everyone's.
    let ahead = this.#queues[priority].costAhead(tenant, charge);
    for (const other of PRIORITIES) {
      if (rank(other) < rank(priority)) ahead += this.#queues[other].cost;
    }
    const budget = this.#config.classes[priority].share * this.#limiter.limit;
    return Math.max(0, this.#inFlight + ahead + charge - budget) / drain;
  }

  #shed(reason: ShedReason, waitedMs: number, circuitRetryMs?: number): Decision {
    // Until something changes (the circuit lets probes through, the queue drains), then one upstream
    // round trip for a probe or a request to finish: a retry any sooner is a wasted attempt.
    const untilChange =
      reason === "shed.circuit_open" ? (circuitRetryMs ?? this.#config.circuit.openMs) : this.#backlogDrainMs();
    const retryMs = untilChange + (this.#limiter.meanLatencyMs ?? UNKNOWN_LATENCY_RETRY_MS);
    const spread = 1 + this.#config.retryAfterJitter * this.#random();
    const retryAfterMs = Math.min(
      this.#config.maxRetryAfterSeconds * 1_000,
      Math.max(MIN_RETRY_AFTER_MS, retryMs) * spread,
    );
    return { kind: "shed", reason, retryAfterMs, waitedMs };
  }

  /** Time for the upstream to work off everything queued now: when retrying has a chance. */
  #backlogDrainMs(): number {
    const drain = this.#drainPerMs();
    if (drain === undefined) return 0;
    const queued = PRIORITIES.reduce((sum, priority) => sum + this.#queues[priority].cost, 0);
    return queued / drain;
  }
}
