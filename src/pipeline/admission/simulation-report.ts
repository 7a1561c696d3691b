// What a simulation run reports: goodput against calibrated capacity, per-class tallies and the
// limit trace.

import type { Priority } from "./priority.js";

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
  /** Attempts shed since the previous point (measured or not): when in a run the guard sheds. */
  readonly shedSince: number;
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
  /**
   * Unloaded work of the requests that arrived in the window ÷ the capacity available in it: the
   * load the draws actually offered (sizes are random, so a nominal 1× run offers a few % more or less).
   */
  readonly offeredShare: number;
  readonly classes: Readonly<Record<Priority, ClassReport>>;
  /** Logical requests given up after their last attempt was shed, by its reason. */
  readonly shedByReason: Readonly<Record<string, number>>;
  /** Attempts clients sent (first attempts and retries) for the measured requests. */
  readonly attempts: number;
  /** Of those, attempts that reached the server: its work per logical request is the amplification. */
  readonly upstreamAttempts: number;
  readonly trace: readonly TracePoint[];
}
