// What a finished exchange tells the controller about the upstream. Only answers the upstream
// produced count: a guard reply (cache hit, contract violation, shed) says nothing about it. The
// circuit judges breakage (5xx, resets, connect failures, calls slower than slowCallMs); slowness
// under load is the limit's to fix, so a timeout or a client that gave up before the answer began
// feeds the limit a censored sample (the latency was at least this) and does not trip the circuit.
// The circuit judges time to the response headers (a long stream is not a slow call); the limit
// learns from the whole time the request held the upstream.
import type { Outcome } from "../types.js";
import type { Completion } from "./controller.js";

export interface CompletionContext {
  /** Time since the request was admitted, ms. */
  readonly heldMs: number;
  /** An answer slower than this is a timeout failure. */
  readonly slowCallMs: number;
  readonly predictedLatencyMs: number | undefined;
  /** The request's real cost, when the upstream reported its usage (see actual-cost.ts). */
  readonly actualCost: number | undefined;
  /**
   * Envoy's x-envoy-upstream-service-time: the upstream's time to its response headers as Envoy's
   * router measured it, free of delays in the guard and on its host (a busy event loop, CPU steal)
   * that the guard's own clock includes. Absent on Envoy's own answers (timeouts, connect failures)
   * and when the router suppresses Envoy headers.
   */
  readonly upstreamServiceMs: number | undefined;
}

/** Parses x-envoy-upstream-service-time (whole ms); anything else is absent. */
export function upstreamServiceMs(header: string | undefined): number | undefined {
  if (header === undefined || !/^\d{1,9}$/.test(header.trim())) return undefined;
  return Number(header.trim());
}

export function completionFrom(outcome: Outcome, context: CompletionContext): Completion {
  const latency = outcome.upstreamLatencyMs;
  if (outcome.cancelled) {
    // A client that left mid-body (a long stream it stopped reading) had its answer started in time.
    if (latency !== undefined) return {};
    // One that gave up before the answer began may simply have moved on: no verdict on the
    // upstream, but the upstream had not answered for this long.
    return censored(context.heldMs, context);
  }
  if (outcome.answeredBy !== "upstream" || outcome.status === undefined) return {};
  // Envoy's own 504 (no service time: the upstream never answered) ended a call that ran into its
  // upstream timeout, usually the one the complexity stage set from the predicted latency.
  if (outcome.status === 504 && context.upstreamServiceMs === undefined) {
    const waited = latency ?? context.heldMs;
    return { ...(waited >= context.slowCallMs ? { verdict: "failure" } : {}), ...censored(waited, context) };
  }
  if (outcome.status >= 500 || (latency !== undefined && latency > context.slowCallMs)) return { verdict: "failure" };
  // A fast refusal (the upstream's own 429) would read as an idle upstream: only answers that did
  // the work feed the limit.
  if (latency === undefined || outcome.status === 429) return { verdict: "success" };
  // The limit learns how long the upstream took for the work a request held budget for: a streamed
  // answer's whole generation (its headers came with the first token), priced at its real cost.
  const firstByte = context.upstreamServiceMs ?? latency;
  return {
    verdict: "success",
    latencyMs: outcome.generationMs === undefined ? firstByte : firstByte + outcome.generationMs - latency,
    ...predicted(context),
    ...(context.actualCost === undefined ? {} : { actualCost: context.actualCost }),
  };
}

function censored(atLeastMs: number, context: CompletionContext): Completion {
  return { latencyMs: atLeastMs, censored: true, ...predicted(context) };
}

function predicted(context: CompletionContext): Pick<Completion, "predictedLatencyMs"> {
  return context.predictedLatencyMs === undefined ? {} : { predictedLatencyMs: context.predictedLatencyMs };
}
