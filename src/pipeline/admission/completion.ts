// What a finished exchange tells the controller about the upstream. Only answers the upstream
// produced count: a guard reply (cache hit, contract violation, shed) says nothing about it.
import type { Outcome } from "../types.js";
import type { Completion } from "./controller.js";

export interface CompletionContext {
  /** Time since the request was admitted, ms. */
  readonly heldMs: number;
  /** An answer slower than this is a timeout failure. */
  readonly slowCallMs: number;
  readonly predictedLatencyMs: number | undefined;
}

export function completionFrom(outcome: Outcome, context: CompletionContext): Completion {
  const latency = outcome.upstreamLatencyMs;
  if (outcome.cancelled) {
    // A client that left mid-body (a long stream it stopped reading) had its answer started in time.
    if (latency !== undefined) return {};
    // A client that gave up after waiting past the timeout saw a timeout; an earlier cancel tells
    // nothing about the upstream (the client may simply have moved on).
    return context.heldMs >= context.slowCallMs ? { verdict: "failure" } : {};
  }
  if (outcome.answeredBy !== "upstream" || outcome.status === undefined) return {};
  if (outcome.status >= 500 || (latency !== undefined && latency > context.slowCallMs)) return { verdict: "failure" };
  // A fast refusal (the upstream's own 429) would read as an idle upstream: only answers that did
  // the work feed the limit.
  if (latency === undefined || outcome.status === 429) return { verdict: "success" };
  return context.predictedLatencyMs === undefined
    ? { verdict: "success", latencyMs: latency }
    : { verdict: "success", latencyMs: latency, predictedLatencyMs: context.predictedLatencyMs };
}
