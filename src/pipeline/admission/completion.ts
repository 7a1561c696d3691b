// What a finished exchange tells the controller about the upstream. Only answers the upstream
// produced count: a guard reply (cache hit, contract violation, shed) says nothing about it. The
// circuit judges time to the response headers (a long stream is not a slow call); the limit learns
// from the whole time the request held the upstream.
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
  // The limit learns how long the upstream took for the work a request held budget for: a streamed
  // answer's whole generation (its headers came with the first token), priced at its real cost.
  return {
    verdict: "success",
    latencyMs: outcome.generationMs ?? latency,
    ...(context.predictedLatencyMs === undefined ? {} : { predictedLatencyMs: context.predictedLatencyMs }),
    ...(context.actualCost === undefined ? {} : { actualCost: context.actualCost }),
  };
}
