// Deterministic virtual-time discrete-event simulation of one admission pool in front of a model
// server that behaves like continuous batching: up to its batch capacity (in cost units) every
// request progresses together, a little slower the fuller the batch; beyond it the batch is
// time-shared, so latency grows with in-flight cost and throughput stays flat. Open-loop Poisson
// arrivals, a seeded PRNG and a virtual clock: the same inputs give the same report, in milliseconds
// of real time, so tests can sweep loads and scenarios.

import { percentile } from "../../util/percentile.js";
import { gaussian, seededRandom } from "../../util/seeded-random.js";
import { type AdmissionConfig, admissionSchema } from "./config.js";
import { AdmissionController, type Decision, type Scheduler, type Ticket } from "./controller.js";
import { MinHeap } from "./heap.js";
import { PRIORITIES, type Priority } from "./priority.js";

export interface ServerModel {
  /** In-flight cost the server batches at full speed; beyond it requests time-share. */
  readonly batchCost: number;
  /**
   * Slot-limited instead (a max batch size, like the demo model): at most this many requests run
   * at once whatever their size, the rest wait in the server's FIFO queue; batchCost is then unused.
   */
  readonly slots?: number;
  /** How much slower each request runs with a full batch than alone (0.3 = 30%). */
  readonly slowdownAtFull: number;
  /** Unloaded latency = overheadMs + msPerCost × cost, times per-request noise. */
  readonly overheadMs: number;
  readonly msPerCost: number;
  /** σ of the log-normal per-request service-time noise. */
  readonly noise: number;
}

export interface CostModel {
  /** Log-normal request sizes, rounded to whole cost units and clipped to [1, max]. */
  readonly median: number;
  readonly sigma: number;
  readonly max: number;
}

export type Mix = Readonly<Record<Priority, number>>;

/** From atMs on, the given fields hold (unset fields keep their previous value). */
export interface Phase {
  readonly atMs: number;
  /** Offered load as a multiple of the server's capacity at full batch. */
  readonly load?: number;
  readonly mix?: Mix;
  /** Server batch capacity as a multiple of the model's batchCost (a capacity drop is < 1). */
  readonly capacity?: number;
}

export interface Scenario {
  readonly name: string;
  readonly durationMs: number;
  readonly phases: readonly Phase[];
}

export interface SimulationOptions {
  readonly seed?: number;
  /** Admission settings; defaults are the guard's. */
  readonly admission?: AdmissionConfig;
  readonly server?: ServerModel;
  readonly costs?: CostModel;
  /**
   * "exact": every request carries its true unloaded latency as predictedLatencyMs (an ideal
   * complexity stage). "none": the controller learns its own baseline.
   */
  readonly prediction?: "exact" | "none";
  /** false: every request goes straight to the server (the unprotected baseline). */
  readonly protect?: boolean;
  /** A response is good when its total latency is within sloFactor × its unloaded latency (at least sloFloorMs). */
  readonly sloFactor?: number;
  readonly sloFloorMs?: number;
  /** Only requests arriving in [measureFromMs, measureToMs) count in the report. */
  readonly measureFromMs?: number;
  readonly measureToMs?: number;
  readonly tenants?: number;
  /** Interval of the limit trace. */
  readonly traceEveryMs?: number;
}

export interface ClassReport {
  readonly offered: number;
  readonly admitted: number;
  readonly shed: number;
  readonly shedByReason: Readonly<Record<string, number>>;
  readonly good: number;
  /** Share of offered requests admitted. */
  readonly keptShare: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  /** Mean time admitted requests waited in the guard's queue (the rest of their latency is the server's). */
  readonly queueWaitMeanMs: number;
}

export interface TracePoint {
  readonly atMs: number;
  readonly limit: number;
  /** The limiter's smoothed latency ratio (1 until the first window closes). */
  readonly ratio: number;
  readonly inFlightCost: number;
  readonly serverCost: number;
  /** Requests the server is working on (not queued inside it). */
  readonly serverRunning: number;
  /** Requests waiting in the server's own queue (slot-limited server). */
  readonly serverQueued: number;
  /** Requests waiting in the guard's queues, all classes. */
  readonly guardQueued: number;
}

export interface SimulationReport {
  readonly scenario: string;
  /**
   * Unloaded work (ms of service time alone) per second the saturated server completes, calibrated
   * per cost model. Work, not cost, like `make bench-shed`: a per-request overhead is work too.
   */
  readonly capacityWorkMsPerSecond: number;
  /** Work per second of good responses in the measurement window. */
  readonly goodputWorkMsPerSecond: number;
  /** Goodput ÷ the capacity available in the measurement window. */
  readonly goodputShare: number;
  readonly classes: Readonly<Record<Priority, ClassReport>>;
  readonly shedByReason: Readonly<Record<string, number>>;
  readonly trace: readonly TracePoint[];
}

export const DEFAULT_SERVER: ServerModel = {
  batchCost: 400,
  slowdownAtFull: 0.3,
  overheadMs: 30,
  msPerCost: 40,
  noise: 0.15,
};
export const DEFAULT_COSTS: CostModel = { median: 6, sigma: 0.8, max: 48 };
/**
 * The demo model as `make bench-shed` runs it: 4 slots, 1 + 0.5·(k−1)/4 slowdown (1.375 full),
 * 60 ms per request plus ~0.25 ms per cost unit (cost ≈ 4 × max_tokens + prompt tokens).
 */
export const DEMO_SLOT_SERVER: ServerModel = {
  batchCost: 0,
  slots: 4,
  slowdownAtFull: 0.375,
  overheadMs: 60,
  msPerCost: 0.25,
  noise: 0.1,
};
export const DEMO_COSTS: CostModel = { median: 480, sigma: 0.8, max: 4_500 };
export const DEFAULT_MIX: Mix = { critical: 0.2, standard: 0.5, sheddable: 0.3 };

interface Job {
  readonly cost: number;
  readonly serviceMs: number;
  readonly done: () => void;
}

interface RunningJob extends Job {
  readonly finishAt: number;
}

/**
 * Processor sharing with one rate for every running job, so progress is a single virtual-work
 * clock and jobs complete in order of the virtual work at which they finish. A slot-limited server
 * runs at most `slots` jobs and queues the rest in arrival order.
 */
class BatchingServer {
  #work = 0;
  #lastMs = 0;
  #cost = 0;
  #batchCost: number;
  #slots: number | undefined;
  readonly #jobs = new MinHeap<RunningJob>((a, b) => a.finishAt < b.finishAt);
  readonly #waiting: Job[] = [];
  #waitingHead = 0;

  constructor(readonly model: ServerModel) {
    this.#batchCost = model.batchCost;
    this.#slots = model.slots;
  }

  /** Cost of every job on the server, running or queued. */
  get cost(): number {
    return this.#cost;
  }

  /** Jobs on the server, running or queued. */
  get count(): number {
    return this.#jobs.size + this.#waiting.length - this.#waitingHead;
  }

  get running(): number {
    return this.#jobs.size;
  }

  #rate(): number {
    const { slowdownAtFull } = this.model;
    if (this.#slots !== undefined) {
      const fill = this.#slots <= 1 ? 0 : Math.max(0, this.#jobs.size - 1) / (this.#slots - 1);
      return 1 / (1 + slowdownAtFull * fill);
    }
    const full = this.#batchCost;
    if (this.#cost <= full) return 1 / (1 + (slowdownAtFull * this.#cost) / full);
    return full / (this.#cost * (1 + slowdownAtFull));
  }

  advance(nowMs: number): void {
    this.#work += (nowMs - this.#lastMs) * this.#rate();
    this.#lastMs = nowMs;
  }

  setCapacity(factor: number, nowMs: number): void {
    this.advance(nowMs);
    this.#batchCost = this.model.batchCost * factor;
    if (this.model.slots !== undefined) this.#slots = Math.max(1, Math.round(this.model.slots * factor));
    this.#fillSlots();
  }

  start(cost: number, serviceMs: number, nowMs: number, done: () => void): void {
    this.advance(nowMs);
    this.#cost += cost;
    this.#waiting.push({ cost, serviceMs, done });
    this.#fillSlots();
  }

  #fillSlots(): void {
    while (this.#waitingHead < this.#waiting.length && (this.#slots === undefined || this.#jobs.size < this.#slots)) {
      const job = this.#waiting[this.#waitingHead++] as Job;
      this.#jobs.push({ ...job, finishAt: this.#work + job.serviceMs });
    }
    if (this.#waitingHead === this.#waiting.length) {
      this.#waiting.length = 0;
      this.#waitingHead = 0;
    }
  }

  nextCompletionMs(): number {
    const job = this.#jobs.peek();
    if (job === undefined) return Number.POSITIVE_INFINITY;
    return this.#lastMs + Math.max(0, job.finishAt - this.#work) / this.#rate();
  }

  completeNext(nowMs: number): void {
    this.advance(nowMs);
    const job = this.#jobs.pop();
    if (job === undefined) return;
    this.#cost = this.count === 0 ? 0 : this.#cost - job.cost;
    this.#fillSlots();
    job.done();
  }
}

interface Timer {
  readonly atMs: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/** Virtual time and timers: the simulation's clock, and the controller tests'. */
export class VirtualClock {
  nowMs = 0;
  #seq = 0;
  readonly timers = new MinHeap<Timer>((a, b) => a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq));

  readonly schedule: Scheduler = (delayMs, fn) => {
    const timer: Timer = { atMs: this.nowMs + delayMs, seq: this.#seq++, fn, cancelled: false };
    this.timers.push(timer);
    return () => {
      timer.cancelled = true;
    };
  };

  readonly now = (): number => this.nowMs;

  nextTimerMs(): number {
    while (this.timers.peek()?.cancelled === true) this.timers.pop();
    return this.timers.peek()?.atMs ?? Number.POSITIVE_INFINITY;
  }

  /** Moves time forward to untilMs, running every timer due on the way in order. */
  advanceTo(untilMs: number): void {
    while (this.nextTimerMs() <= untilMs) {
      const timer = this.timers.pop() as Timer;
      this.nowMs = timer.atMs;
      timer.fn();
    }
    this.nowMs = Math.max(this.nowMs, untilMs);
  }
}

function drawCost(random: () => number, costs: CostModel): number {
  return Math.min(costs.max, Math.max(1, Math.round(costs.median * Math.exp(costs.sigma * gaussian(random)))));
}

function serviceMs(cost: number, server: ServerModel, random: () => number): number {
  return (
    (server.overheadMs + server.msPerCost * cost) *
    Math.exp(server.noise * gaussian(random) - (server.noise * server.noise) / 2)
  );
}

/**
 * Unloaded work (ms) per second the server completes kept saturated (closed loop at 1.5 × batch or slots) with the
 * cost model's mix. Large requests linger longer in a time-shared batch, so this is measured, not
 * derived.
 */
export function calibrateCapacity(server: ServerModel, costs: CostModel, seed = 7): number {
  const random = seededRandom(seed);
  const model = new BatchingServer(server);
  const warmupMs = 20_000;
  const untilMs = 80_000;
  let completedWork = 0;
  let now = 0;
  const saturated = (): boolean =>
    server.slots === undefined ? model.cost >= 1.5 * server.batchCost : model.count >= 1.5 * server.slots;
  const refill = (): void => {
    while (!saturated()) {
      const cost = drawCost(random, costs);
      const work = serviceMs(cost, server, random);
      model.start(cost, work, now, () => {
        if (now >= warmupMs) completedWork += work;
      });
    }
  };
  refill();
  while (now < untilMs) {
    now = model.nextCompletionMs();
    model.completeNext(now);
    refill();
  }
  return (completedWork / (untilMs - warmupMs)) * 1000;
}

function meanCost(costs: CostModel, seed = 11): number {
  const random = seededRandom(seed);
  const draws = 20_000;
  let sum = 0;
  for (let i = 0; i < draws; i++) sum += drawCost(random, costs);
  return sum / draws;
}

interface ClassTally {
  offered: number;
  admitted: number;
  shed: number;
  shedByReason: Record<string, number>;
  good: number;
  latencies: number[];
  waitedMs: number;
}

export function simulate(scenario: Scenario, options: SimulationOptions = {}): SimulationReport {
  const server = options.server ?? DEFAULT_SERVER;
  const costs = options.costs ?? DEFAULT_COSTS;
  const admission = options.admission ?? admissionSchema.parse({});
  const random = seededRandom(options.seed ?? 1);
  const sloFactor = options.sloFactor ?? 4;
  const sloFloorMs = options.sloFloorMs ?? 0;
  const measureFrom = options.measureFromMs ?? 0;
  const measureTo = options.measureToMs ?? scenario.durationMs;
  const tenants = options.tenants ?? 1;
  const traceEvery = options.traceEveryMs ?? 500;
  const protect = options.protect ?? true;
  const exactPrediction = (options.prediction ?? "exact") === "exact";

  const capacity = calibrateCapacity(server, costs);
  const requestsPerSecondAtCapacity = capacity / (server.overheadMs + server.msPerCost * meanCost(costs));

  const clock = new VirtualClock();
  const model = new BatchingServer(server);
  const controller = new AdmissionController(admission, { now: () => clock.nowMs, schedule: clock.schedule });
  const emptyTally = (): ClassTally => ({
    offered: 0,
    admitted: 0,
    shed: 0,
    shedByReason: {},
    good: 0,
    latencies: [],
    waitedMs: 0,
  });
  const tallies: Record<Priority, ClassTally> = {
    critical: emptyTally(),
    standard: emptyTally(),
    sheddable: emptyTally(),
  };
  const shedByReason: Record<string, number> = {};
  const trace: TracePoint[] = [];
  let goodWork = 0;
  let capacityIntegral = 0;

  let load = 0;
  let mix: Mix = DEFAULT_MIX;
  let capacityFactor = 1;
  const phases = [...scenario.phases].sort((a, b) => a.atMs - b.atMs);
  let phaseIndex = 0;
  let nextArrivalMs = Number.POSITIVE_INFINITY;
  let nextTraceMs = 0;

  const applyPhases = (): void => {
    while (phaseIndex < phases.length && (phases[phaseIndex]?.atMs ?? Infinity) <= clock.nowMs) {
      const phase = phases[phaseIndex++] as Phase;
      if (phase.load !== undefined) load = phase.load;
      if (phase.mix !== undefined) mix = phase.mix;
      if (phase.capacity !== undefined) {
        capacityFactor = phase.capacity;
        model.setCapacity(capacityFactor, clock.nowMs);
      }
      // Poisson arrivals are memoryless: redrawing at a rate change is exact.
      nextArrivalMs = clock.nowMs + interArrivalMs();
    }
  };
  const interArrivalMs = (): number => {
    const rate = (load * capacityFactor * requestsPerSecondAtCapacity) / 1000;
    return rate > 0 ? -Math.log(1 - random()) / rate : Number.POSITIVE_INFINITY;
  };
  const drawPriority = (): Priority => {
    const total = mix.critical + mix.standard + mix.sheddable;
    const draw = random() * total;
    if (draw < mix.critical) return "critical";
    return draw < mix.critical + mix.standard ? "standard" : "sheddable";
  };

  const arrive = (): void => {
    const arrivedAt = clock.nowMs;
    const measured = arrivedAt >= measureFrom && arrivedAt < measureTo;
    const priority = drawPriority();
    const cost = drawCost(random, costs);
    const unloadedMs = serviceMs(cost, server, random);
    const predictedLatencyMs = server.overheadMs + server.msPerCost * cost;
    const tenant = `t${Math.floor(random() * tenants)}`;
    const tally = tallies[priority];
    if (measured) tally.offered += 1;

    const run = (ticket: Ticket | undefined): void => {
      if (measured) {
        tally.admitted += 1;
        tally.waitedMs += ticket?.waitedMs ?? 0;
      }
      model.start(cost, unloadedMs, clock.nowMs, () => {
        const latency = clock.nowMs - arrivedAt;
        if (ticket !== undefined) {
          const upstreamMs = clock.nowMs - ticket.admittedAt;
          controller.release(
            ticket,
            exactPrediction
              ? { verdict: "success", latencyMs: upstreamMs, predictedLatencyMs }
              : { verdict: "success", latencyMs: upstreamMs },
          );
        }
        if (!measured) return;
        tally.latencies.push(latency);
        if (latency <= Math.max(sloFloorMs, sloFactor * unloadedMs)) {
          tally.good += 1;
          goodWork += unloadedMs;
        }
      });
    };
    const settle = (decision: Decision): void => {
      if (decision.kind === "admitted") {
        run(decision.ticket);
        return;
      }
      if (!measured) return;
      tally.shed += 1;
      tally.shedByReason[decision.reason] = (tally.shedByReason[decision.reason] ?? 0) + 1;
      shedByReason[decision.reason] = (shedByReason[decision.reason] ?? 0) + 1;
    };
    if (!protect) {
      run(undefined);
      return;
    }
    const attempt = controller.acquire({ cost, priority, tenant }, settle);
    if (attempt.kind !== "queued") settle(attempt);
  };

  applyPhases();
  for (;;) {
    const nextPhaseMs = phases[phaseIndex]?.atMs ?? Number.POSITIVE_INFINITY;
    const nextTimerMs = clock.nextTimerMs();
    const nextCompletionMs = model.nextCompletionMs();
    const nextMs = Math.min(nextPhaseMs, nextTimerMs, nextCompletionMs, nextArrivalMs, nextTraceMs);
    if (nextMs >= scenario.durationMs) break;
    const windowStart = Math.max(clock.nowMs, measureFrom);
    const windowEnd = Math.min(nextMs, measureTo);
    if (windowEnd > windowStart) capacityIntegral += (windowEnd - windowStart) * capacityFactor;
    clock.nowMs = nextMs;
    // Fixed order for simultaneous events keeps runs reproducible.
    if (nextMs === nextPhaseMs) {
      applyPhases();
    } else if (nextMs === nextTimerMs) {
      const timer = clock.timers.pop();
      timer?.fn();
    } else if (nextMs === nextCompletionMs) {
      model.completeNext(nextMs);
    } else if (nextMs === nextArrivalMs) {
      nextArrivalMs = clock.nowMs + interArrivalMs();
      arrive();
    } else {
      trace.push({
        atMs: nextMs,
        limit: controller.limit,
        ratio: controller.smoothedRatio ?? 1,
        inFlightCost: controller.inFlightCost,
        serverCost: model.cost,
        serverRunning: model.running,
        serverQueued: model.count - model.running,
        guardQueued: PRIORITIES.reduce((sum, priority) => sum + controller.queueLength(priority), 0),
      });
      nextTraceMs += traceEvery;
    }
  }

  const measuredSeconds = (measureTo - measureFrom) / 1000;
  const goodputWorkMsPerSecond = goodWork / measuredSeconds;
  const classes = Object.fromEntries(
    PRIORITIES.map((priority) => {
      const tally = tallies[priority];
      const report: ClassReport = {
        offered: tally.offered,
        admitted: tally.admitted,
        shed: tally.shed,
        shedByReason: tally.shedByReason,
        good: tally.good,
        keptShare: tally.offered === 0 ? 1 : tally.admitted / tally.offered,
        latencyP50Ms: percentile(tally.latencies, 0.5) ?? 0,
        latencyP99Ms: percentile(tally.latencies, 0.99) ?? 0,
        queueWaitMeanMs: tally.admitted === 0 ? 0 : tally.waitedMs / tally.admitted,
      };
      return [priority, report];
    }),
  ) as Record<Priority, ClassReport>;
  return {
    scenario: scenario.name,
    capacityWorkMsPerSecond: capacity,
    goodputWorkMsPerSecond,
    goodputShare: goodputWorkMsPerSecond / ((capacity * capacityIntegral) / 1000 / measuredSeconds),
    classes,
    shedByReason,
    trace,
  };
}

/** The scenarios the issue names, parameterised so tests can sweep them. */
export const scenarios = {
  steady(load: number, durationMs = 40_000): Scenario {
    return { name: `steady ${load}x`, durationMs, phases: [{ atMs: 0, load, mix: DEFAULT_MIX, capacity: 1 }] };
  },
  stepLoad(from: number, to: number, atMs = 10_000, durationMs = 40_000): Scenario {
    return {
      name: `step ${from}x→${to}x`,
      durationMs,
      phases: [
        { atMs: 0, load: from, mix: DEFAULT_MIX, capacity: 1 },
        { atMs, load: to },
      ],
    };
  },
  spike(base: number, peak: number, atMs = 10_000, lengthMs = 3_000, durationMs = 40_000): Scenario {
    return {
      name: `spike ${base}x→${peak}x for ${lengthMs} ms`,
      durationMs,
      phases: [
        { atMs: 0, load: base, mix: DEFAULT_MIX, capacity: 1 },
        { atMs, load: peak },
        { atMs: atMs + lengthMs, load: base },
      ],
    };
  },
  /** Offered load stays the same absolute rate while the server loses capacity. */
  capacityDrop(load: number, remaining: number, atMs = 15_000, durationMs = 45_000): Scenario {
    return {
      name: `capacity drop to ${remaining} at ${load}x`,
      durationMs,
      phases: [
        { atMs: 0, load, mix: DEFAULT_MIX, capacity: 1 },
        { atMs, capacity: remaining, load: load / remaining },
      ],
    };
  },
  mixShift(load: number, to: Mix, atMs = 15_000, durationMs = 40_000): Scenario {
    return {
      name: `mix shift at ${load}x`,
      durationMs,
      phases: [
        { atMs: 0, load, mix: DEFAULT_MIX, capacity: 1 },
        { atMs, mix: to },
      ],
    };
  },
};
