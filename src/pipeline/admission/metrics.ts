// Admission metrics, registered on the guard's own registry. Labels are bounded: route and pool
// names come from the config, priority and reason from fixed vocabularies.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { CIRCUIT_STATE_VALUE } from "./circuit.js";
import type { AdmissionController } from "./controller.js";

/** Queue waits: from "admitted at once" (not observed) through a few ms up to the longest class wait. */
export const QUEUE_WAIT_BUCKETS_SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5];
/** Observed ÷ unloaded latency: 1 is unloaded, the default target is 1.8, ≥ 5 is a struggling upstream. */
export const LATENCY_RATIO_BUCKETS = [0.5, 0.75, 1, 1.25, 1.5, 1.8, 2, 2.5, 3, 5, 10];
/**
 * Real ÷ estimated cost: symmetric around 1 on a log scale, from an answer 8× smaller than priced (a
 * max_tokens budget it never used) to 8× larger.
 */
export const COST_RATIO_BUCKETS = [0.125, 0.25, 0.5, 0.67, 0.8, 0.9, 1, 1.11, 1.25, 1.5, 2, 4, 8];

export interface AdmissionMetrics {
  readonly shed: Counter<"reason" | "priority" | "route">;
  readonly admittedCost: Counter<"priority" | "route">;
  readonly releasedCost: Counter<"priority" | "route" | "basis">;
  readonly costRatio: Histogram<"route">;
  readonly queueWait: Histogram<"priority" | "result">;
  readonly latencyRatio: Histogram<"pool">;
  readonly badInput: Counter<"kind">;
  readonly retries: Counter<"pool" | "result">;
  readonly holdExpired: Counter<"pool">;
}

export function createAdmissionMetrics(
  registry: Registry,
  pools: ReadonlyMap<string, AdmissionController>,
): AdmissionMetrics {
  const registers = [registry];
  const perPool = (read: (controller: AdmissionController) => number) =>
    function (this: Gauge<"pool">) {
      for (const [pool, controller] of pools) this.set({ pool }, read(controller));
    };
  new Gauge({
    name: "guard_admission_inflight_cost",
    help: "Budget held by requests admitted and not yet finished (cost plus the per-request charge), per pool",
    labelNames: ["pool"],
    registers,
    collect: perPool((controller) => controller.inFlightCost),
  });
  new Gauge({
    name: "guard_admission_limit_cost",
    help: "Current adaptive in-flight budget (cost units including the per-request charge), per pool",
    labelNames: ["pool"],
    registers,
    collect: perPool((controller) => controller.limit),
  });
  new Gauge({
    name: "guard_circuit_state",
    help: "Upstream circuit breaker state per pool: 0 closed, 1 half-open, 2 open",
    labelNames: ["pool"],
    registers,
    collect: perPool((controller) => CIRCUIT_STATE_VALUE[controller.circuitState()]),
  });
  new Gauge({
    name: "guard_admission_queued",
    help: "Requests waiting in the admission queue, per pool and priority",
    labelNames: ["pool", "priority"],
    registers,
    collect(this: Gauge<"pool" | "priority">) {
      for (const [pool, controller] of pools) {
        for (const priority of ["critical", "standard", "sheddable"] as const) {
          this.set({ pool, priority }, controller.queueLength(priority));
        }
      }
    },
  });
  return {
    shed: new Counter({
      name: "guard_shed_total",
      help: "Requests the guard answered itself instead of forwarding, by shed reason, priority and route",
      labelNames: ["reason", "priority", "route"],
      registers,
    }),
    admittedCost: new Counter({
      name: "guard_admission_admitted_cost_total",
      help: "Cost units admitted to the upstream, by priority and route",
      labelNames: ["priority", "route"],
      registers,
    }),
    releasedCost: new Counter({
      name: "guard_admission_released_cost_total",
      help: "Cost units of admitted requests that ended, by priority, route and basis: actual (the estimate with the expected output replaced by the completion tokens the upstream reported) estimate (no usage reported) or expired (held past admission.maxHoldMs)",
      labelNames: ["priority", "route", "basis"],
      registers,
    }),
    costRatio: new Histogram({
      name: "guard_admission_cost_ratio",
      help: "Real cost divided by the estimated (admitted) cost, per ended request whose upstream reported usage, per route",
      labelNames: ["route"],
      buckets: COST_RATIO_BUCKETS,
      registers,
    }),
    queueWait: new Histogram({
      name: "guard_admission_queue_wait_seconds",
      help: "Time requests spent in the admission queue, by priority and how the wait ended (admitted, timeout, circuit_open, cancelled)",
      labelNames: ["priority", "result"],
      buckets: QUEUE_WAIT_BUCKETS_SECONDS,
      registers,
    }),
    latencyRatio: new Histogram({
      name: "guard_admission_latency_ratio",
      help: "Upstream latency divided by the predicted unloaded latency, per completed request and pool",
      labelNames: ["pool"],
      buckets: LATENCY_RATIO_BUCKETS,
      registers,
    }),
    retries: new Counter({
      name: "guard_admission_retries_total",
      help: "Client retries (admission.retries.headers) by pool and result: admitted (at once or after queueing) or shed (shed.retry_budget or any other reason)",
      labelNames: ["pool", "result"],
      registers,
    }),
    holdExpired: new Counter({
      name: "guard_admission_hold_expired_total",
      help: "Admitted requests whose exchange had not ended after admission.maxHoldMs: their budget was returned without a verdict, per pool",
      labelNames: ["pool"],
      registers,
    }),
    badInput: new Counter({
      name: "guard_admission_bad_input_total",
      help: "Admission inputs replaced by a default: invalid_cost (→ admission.defaultCost); an unknown class is guard_identity_ignored_total",
      labelNames: ["kind"],
      registers,
    }),
  };
}
