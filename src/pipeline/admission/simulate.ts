// Deterministic virtual-time discrete-event simulation of one admission pool in front of a model
// server that behaves like continuous batching: up to its batch capacity (in cost units) every
// request progresses together, a little slower the fuller the batch; beyond it the batch is
// time-shared, so latency grows with in-flight cost and throughput stays flat. Open-loop Poisson
// arrivals, a seeded PRNG and a virtual clock: the same inputs give the same report, in milliseconds
// of real time, so tests can sweep loads and scenarios.

import { percentile } from "../../util/percentile.js";
import { seededRandom } from "../../util/seeded-random.js";
import { type AdmissionConfig, admissionSchema } from "./config.js";
import { AdmissionController, type Decision, type Ticket } from "./controller.js";
import { PRIORITIES, type Priority } from "./priority.js";
import {
  BatchingServer,
  type CostModel,
  calibrateCapacity,
  DEFAULT_COSTS,
  DEFAULT_SERVER,
  drawCost,
  meanCost,
  type ServerModel,
  serviceMs,
} from "./simulated-server.js";
import type { ClassReport, SimulationReport, TracePoint } from "./simulation-report.js";
import { VirtualClock } from "./virtual-clock.js";

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
   * complexity stage) and the limiter uses it (limit.usePredictedLatency). "none": the controller
   * learns its own baseline.
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
  /**
   * Upstream timeouts as the complexity stage sets them: factor × the request's unloaded latency, at
   * least floorMs. A request still running then is answered 504 and released; the server keeps
   * working on it (it never learns the client left). `as`: what the controller hears — "censored"
   * (latency ≥ the timeout, no verdict: what the admission stage tells it) or "failure" (a circuit
   * failure and no latency sample: how timeouts were counted before censoring).
   */
  readonly upstreamTimeout?: { readonly factor: number; readonly floorMs: number; readonly as: "censored" | "failure" };
  /**
   * Clients that retry: a shed or timed-out attempt is sent again after delayMs (0: at once), up to
   * max times, marked as a retry (as the OpenAI SDKs mark theirs) unless `marked` is false. A
   * logical request is good when one of its attempts answers within the SLO of its first arrival.
   */
  readonly retries?: {
    readonly max: number;
    readonly delayMs: number;
    readonly marked: boolean;
    /** Wait what a shed answer asks for (retry-after-ms, as the OpenAI SDKs do) instead of delayMs. */
    readonly honourRetryAfter?: boolean;
  };
  /**
   * Closed-loop users instead of open-loop arrivals, as `make bench-shed`'s retry scenarios run them:
   * each user thinks (exponential, mean thinkMs), sends a request and waits for its end (retries
   * included) before thinking again. There are as many users as offer the phase's load at unloaded
   * latency, so at overload their rate falls as latency rises, as real users' does.
   */
  readonly users?: { readonly thinkMs: number };
  /**
   * A second kind of request whose size does not predict its work: a `share` of arrivals are drawn
   * from `costs` and take `latencyMs` (times the server's noise) whatever their size, and none of
   * them arrives while the server is idle (an arrival then is of the ordinary kind), so the guard
   * never sees one run alone (say, a tool-calling request that always generates a long answer and
   * comes only in the middle of a conversation's traffic).
   */
  readonly slowKind?: { readonly share: number; readonly latencyMs: number; readonly costs: CostModel };
  /**
   * "poisson" (default): open-loop Poisson arrivals. "paced": one arrival every 1 / rate, as the
   * open loop of `make bench-shed` sends them; at exactly the server's capacity Poisson bursts alone
   * overflow any queue the guard may keep, paced arrivals do not.
   */
  readonly arrivals?: "poisson" | "paced";
  /** Interval of the limit trace. */
  readonly traceEveryMs?: number;
}

export const DEFAULT_MIX: Mix = { critical: 0.2, standard: 0.5, sheddable: 0.3 };

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
  const exactPrediction = (options.prediction ?? "exact") === "exact";
  const configured = options.admission ?? admissionSchema.parse({});
  const admission = { ...configured, limit: { ...configured.limit, usePredictedLatency: exactPrediction } };
  const random = seededRandom(options.seed ?? 1);
  const sloFactor = options.sloFactor ?? 4;
  const sloFloorMs = options.sloFloorMs ?? 0;
  const measureFrom = options.measureFromMs ?? 0;
  const measureTo = options.measureToMs ?? scenario.durationMs;
  const tenants = options.tenants ?? 1;
  const traceEvery = options.traceEveryMs ?? 500;
  const protect = options.protect ?? true;
  const paced = options.arrivals === "paced";
  const slowKind = options.slowKind;

  const capacity = calibrateCapacity(server, costs);
  const requestsPerSecondAtCapacity = capacity / (server.overheadMs + server.msPerCost * meanCost(costs));

  const clock = new VirtualClock();
  const model = new BatchingServer(server);
  const controller = new AdmissionController(admission, {
    now: () => clock.nowMs,
    schedule: clock.schedule,
    // Its own stream: Retry-After draws must not shift the arrivals of the same seed.
    random: seededRandom(options.seed ?? 1),
  });
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
  let offeredWork = 0;
  let attempts = 0;
  let upstreamAttempts = 0;
  let capacityIntegral = 0;
  let shedSinceTrace = 0;

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
      if (users !== undefined) {
        const wanted = Math.round(
          ((load * capacityFactor * requestsPerSecondAtCapacity) / 1000) * (users.thinkMs + meanServiceMs),
        );
        while (userCount < wanted) {
          userCount += 1;
          clock.schedule(-Math.log(1 - random()) * users.thinkMs, userLoop);
        }
        continue;
      }
      // Poisson arrivals are memoryless: redrawing at a rate change is exact (paced ones restart their period).
      nextArrivalMs = clock.nowMs + interArrivalMs();
    }
  };
  const users = options.users;
  let userCount = 0;
  const meanServiceMs = server.overheadMs + server.msPerCost * meanCost(costs);
  const userLoop = (): void => {
    arrive(() => {
      if (users !== undefined) clock.schedule(-Math.log(1 - random()) * users.thinkMs, userLoop);
    });
  };
  const interArrivalMs = (): number => {
    const rate = (load * capacityFactor * requestsPerSecondAtCapacity) / 1000;
    if (rate <= 0) return Number.POSITIVE_INFINITY;
    return paced ? 1 / rate : -Math.log(1 - random()) / rate;
  };
  const drawPriority = (): Priority => {
    const total = mix.critical + mix.standard + mix.sheddable;
    const draw = random() * total;
    if (draw < mix.critical) return "critical";
    return draw < mix.critical + mix.standard ? "standard" : "sheddable";
  };

  interface Logical {
    readonly arrivedAt: number;
    readonly measured: boolean;
    readonly priority: Priority;
    readonly cost: number;
    readonly unloadedMs: number;
    readonly predictedLatencyMs: number;
    readonly tenant: string;
    /** A closed-loop user's: the request has ended (answered, or given up on). */
    readonly onEnd?: () => void;
  }

  const retries = options.retries;
  const retryOrGiveUp = (request: Logical, attemptNumber: number, reason?: string, retryAfterMs?: number): void => {
    if (retries !== undefined && attemptNumber < retries.max) {
      const delayMs = retries.honourRetryAfter === true && retryAfterMs !== undefined ? retryAfterMs : retries.delayMs;
      clock.schedule(delayMs, () => send(request, attemptNumber + 1));
      return;
    }
    request.onEnd?.();
    // A last attempt that timed out was admitted (and is in the latencies), not shed.
    if (!request.measured || reason === undefined) return;
    const tally = tallies[request.priority];
    tally.shed += 1;
    tally.shedByReason[reason] = (tally.shedByReason[reason] ?? 0) + 1;
    shedByReason[reason] = (shedByReason[reason] ?? 0) + 1;
  };

  const send = (request: Logical, attemptNumber: number): void => {
    const { measured, priority, cost, unloadedMs, predictedLatencyMs, arrivedAt } = request;
    const tally = tallies[priority];
    if (measured) attempts += 1;

    const run = (ticket: Ticket | undefined): void => {
      if (measured) {
        upstreamAttempts += 1;
        tally.admitted += 1;
        tally.waitedMs += ticket?.waitedMs ?? 0;
      }
      const prediction = exactPrediction ? { predictedLatencyMs } : {};
      let timedOut = false;
      const timeout = options.upstreamTimeout;
      const timeoutMs = timeout && Math.max(timeout.floorMs, timeout.factor * predictedLatencyMs);
      const cancelTimeout =
        timeout === undefined || timeoutMs === undefined
          ? () => undefined
          : clock.schedule(timeoutMs, () => {
              timedOut = true;
              if (ticket !== undefined)
                controller.release(
                  ticket,
                  timeout.as === "censored"
                    ? { latencyMs: timeoutMs, censored: true, ...prediction }
                    : { verdict: "failure" },
                );
              if (measured) tally.latencies.push(clock.nowMs - arrivedAt);
              retryOrGiveUp(request, attemptNumber);
            });
      model.start(cost, unloadedMs, clock.nowMs, () => {
        if (timedOut) return;
        cancelTimeout();
        const latency = clock.nowMs - arrivedAt;
        if (ticket !== undefined) {
          controller.release(ticket, { verdict: "success", latencyMs: clock.nowMs - ticket.admittedAt, ...prediction });
        }
        request.onEnd?.();
        if (!measured) return;
        tally.latencies.push(latency);
        if (latency <= Math.max(sloFloorMs, sloFactor * unloadedMs)) {
          tally.good += 1;
          goodWork += unloadedMs;
        }
      });
    };
    const settle = (decision: Decision): void => {
      if (decision.kind === "admitted") run(decision.ticket);
      else {
        shedSinceTrace += 1;
        retryOrGiveUp(request, attemptNumber, decision.reason, decision.retryAfterMs);
      }
    };
    if (!protect) {
      run(undefined);
      return;
    }
    const retry = attemptNumber > 0 && retries?.marked === true;
    const attempt = controller.acquire({ cost, priority, tenant: request.tenant, retry }, settle);
    if (attempt.kind !== "queued") settle(attempt);
  };

  const arrive = (onEnd?: () => void): void => {
    const arrivedAt = clock.nowMs;
    const measured = arrivedAt >= measureFrom && arrivedAt < measureTo;
    const priority = drawPriority();
    const slow = slowKind !== undefined && random() < slowKind.share && model.count > 0;
    const cost = drawCost(random, slow ? slowKind.costs : costs);
    const unloadedMs = slow
      ? slowKind.latencyMs * serviceMs(cost, { ...server, overheadMs: 1, msPerCost: 0 }, random)
      : serviceMs(cost, server, random);
    const predictedLatencyMs = slow ? slowKind.latencyMs : server.overheadMs + server.msPerCost * cost;
    const tenant = `t${Math.floor(random() * tenants)}`;
    if (measured) {
      tallies[priority].offered += 1;
      offeredWork += unloadedMs;
    }
    send(
      { arrivedAt, measured, priority, cost, unloadedMs, predictedLatencyMs, tenant, ...(onEnd ? { onEnd } : {}) },
      0,
    );
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
        shedSince: shedSinceTrace,
      });
      shedSinceTrace = 0;
      nextTraceMs += traceEvery;
    }
  }

  const measuredSeconds = (measureTo - measureFrom) / 1000;
  const goodputWorkMsPerSecond = goodWork / measuredSeconds;
  const availableWorkMs = capacity * (capacityIntegral / 1000);
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
    goodputShare: goodWork / availableWorkMs,
    offeredShare: offeredWork / availableWorkMs,
    classes,
    shedByReason,
    attempts,
    upstreamAttempts,
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
