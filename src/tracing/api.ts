// What the pipeline runner sees of tracing: a tracer that may decline an exchange, and a trace it
// reports stage timings and the outcome to. No OpenTelemetry import here (the SDK is otel.ts, built
// by the server only when tracing is on); with tracing off the runner holds no tracer at all.
import type { Exchange, Outcome, RequestInfo, Step } from "../pipeline/types.js";

/** Stage hooks that get a span of their own; streamed chunks and onEnd are timed by the histogram only. */
export type TracedPhase =
  | "request_headers"
  | "request_body"
  | "response_headers"
  | "response_body"
  | "response_trailers";

/** The headers stages state their decisions in, by what they say (pipeline/build.ts names them). */
export interface DecisionHeaders {
  readonly cache: string;
  readonly cacheTier: string;
  readonly cacheReason: string;
  /** "" when the contracts section switched its header off. */
  readonly contract: string;
}

export interface ExchangeStart {
  readonly request: RequestInfo;
  readonly route: string;
  /** The pipeline's monotonic clock (performance.now() ms), as every time below. */
  readonly startedAt: number;
  readonly decisionHeaders: DecisionHeaders;
}

/** One stage hook that ran: its step, or the error it threw. */
export interface StageTiming {
  readonly stage: string;
  readonly phase: TracedPhase;
  readonly startMs: number;
  readonly endMs: number;
  readonly step: Step | undefined;
  readonly error?: unknown;
}

export interface ExchangeTrace {
  /** For the exchange's log lines: the ids of its span. */
  readonly traceId: string;
  readonly spanId: string;
  stage(timing: StageTiming): void;
  streamCut(reason: string, atMs: number): void;
  /** Once; ends the exchange's span (and exports it, when sampled). */
  end(exchange: Exchange, outcome: Outcome, atMs: number): void;
}

export interface ExchangeTracer {
  /** Undefined when nothing of this exchange would be recorded: the runner then does no tracing work. */
  start(exchange: ExchangeStart): ExchangeTrace | undefined;
  /** Exports what is still queued; at most `timeoutMs`. */
  shutdown(timeoutMs: number): Promise<void>;
}
