// What the server and the guard looked like during a point: sampled while it runs, never failing it.
import { setTimeout as sleep } from "node:timers/promises";
import type { Stack } from "../../src/devstack/stack.js";
import { metricSum, metricValue } from "../metrics-text.js";
import { type QueueWait, round, type Telemetry } from "./report.js";
import type { Priority } from "./workload.js";

const TELEMETRY_EVERY_MS = 250;

function mean(values: readonly number[]): number | null {
  return values.length === 0 ? null : values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** Standard deviation ÷ mean: how much the budget swings (issue 17's target at steady load: ≤ 0.15). */
function coefficientOfVariation(values: readonly number[]): number | null {
  const average = mean(values);
  if (average === null || average === 0) return null;
  const variance = values.reduce((sum, value) => sum + (value - average) ** 2, 0) / values.length;
  return Math.sqrt(variance) / average;
}

const QUEUE_WAIT = "guard_admission_queue_wait_seconds";

async function guardMetrics(stack: Stack): Promise<string | undefined> {
  try {
    return await stack.guard?.metrics();
  } catch {
    return undefined;
  }
}

/** Queue waits of admitted requests between two scrapes of the guard's metrics, per class. */
function queueWaits(before: string, after: string): Record<Priority, QueueWait> {
  const wait = (priority: Priority): QueueWait => {
    const labels = { priority, result: "admitted" };
    const count = metricSum(after, `${QUEUE_WAIT}_count`, labels) - metricSum(before, `${QUEUE_WAIT}_count`, labels);
    const seconds = metricSum(after, `${QUEUE_WAIT}_sum`, labels) - metricSum(before, `${QUEUE_WAIT}_sum`, labels);
    return { admittedAfterWait: count, meanWaitMs: count === 0 ? null : round((seconds * 1000) / count) };
  };
  return { critical: wait("critical"), standard: wait("standard"), sheddable: wait("sheddable") };
}

/** Samples the model's batch and the guard's budget until stopped; monitoring only, never fails the run. */
export function sampleTelemetry(stack: Stack, capacity: number): () => Promise<Telemetry> {
  const startMetrics = guardMetrics(stack);
  const active: number[] = [];
  const waiting: number[] = [];
  const limits: number[] = [];
  const inFlight: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const stats = (await (await fetch(`${stack.light.url}/__demo/stats`)).json()) as {
          active: number;
          waiting: number;
        };
        active.push(stats.active);
        waiting.push(stats.waiting);
        if (stack.guard !== undefined) {
          const text = await stack.guard.metrics();
          const limit = metricValue(text, "guard_admission_limit_cost");
          const cost = metricValue(text, "guard_admission_inflight_cost");
          if (limit !== undefined) limits.push(limit);
          if (cost !== undefined) inFlight.push(cost);
        }
      } catch {
        // A missed sample only thins the telemetry.
      }
      await sleep(TELEMETRY_EVERY_MS);
    }
  })();
  return async () => {
    running = false;
    await loop;
    const before = await startMetrics;
    const after = await guardMetrics(stack);
    return {
      serverUtilisation: round((mean(active) ?? 0) / capacity, 3) ?? 0,
      serverQueue: round(mean(waiting) ?? 0, 2) ?? 0,
      guardLimitCost: round(mean(limits), 0),
      guardLimitCv: round(coefficientOfVariation(limits), 3),
      guardInFlightCost: round(mean(inFlight), 0),
      guardQueue: before === undefined || after === undefined ? null : queueWaits(before, after),
    };
  };
}

/**
 * Requests the guard classed from a verified source (identity rules on source.address), per class:
 * proof the class mix reached it, since a client's own class header is stripped by Envoy.
 */
export function guardClasses(metrics: string): Record<Priority, number> {
  const seen = (priority: Priority): number =>
    metricSum(metrics, "guard_identity_priority_total", { priority, source: "rule" });
  return { critical: seen("critical"), standard: seen("standard"), sheddable: seen("sheddable") };
}
