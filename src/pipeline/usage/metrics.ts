// The usage stage's metrics, all on the registry it was given. Labels: route and tier names come
// from configuration, model versions through a BoundedLabel, kind and outcome from fixed
// vocabularies, so every label set is bounded.
import { Counter, Histogram, type Registry } from "prom-client";

/**
 * Time to first token (seconds): 10 ms (a cached prefix on a small model) to 30 s (a long prompt
 * queued behind others); 1-2-5 steps plus 20 and 30 s, as prefill time grows with the prompt.
 */
export const TTFT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30];
/**
 * Time per output token (seconds): 1 ms to 1 s, densest between 10 and 100 ms where decoding on
 * a GPU usually is (10-100 tokens/s per stream).
 */
export const TPOT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1];

export type StreamOutcome = "completed" | "cancelled" | "cut";

export interface UsageMetrics {
  readonly tokens: Counter<"route" | "model_version" | "kind" | "source">;
  readonly usageMissing: Counter<"route">;
  readonly timeToFirstToken: Histogram<"route" | "tier">;
  readonly timePerOutputToken: Histogram<"route" | "tier">;
  readonly streams: Counter<"route" | "outcome">;
  readonly eventsSkipped: Counter<"route">;
}

export function createUsageMetrics(registry: Registry): UsageMetrics {
  const registers = [registry];
  return {
    tokens: new Counter({
      name: "guard_tokens_total",
      help: "Tokens of the upstream's answers (kind: prompt, completion) by source: reported (a stream's usage event, which OpenAI sends only under stream_options.include_usage, or a non-streamed JSON body's usage when the body passed the guard); for a stream that completed without usage, deltas (completion: its output events, one per token on llama.cpp and vLLM, a floor where an event carries several) and estimate (prompt: the complexity stage's estimate, on priced routes).",
      labelNames: ["route", "model_version", "kind", "source"] as const,
      registers,
    }),
    usageMissing: new Counter({
      name: "guard_stream_usage_missing_total",
      help: "Streamed answers that completed without reporting usage (client without stream_options.include_usage, or a server that never sends it): their tokens are in guard_tokens_total with source deltas and estimate.",
      labelNames: ["route"] as const,
      registers,
    }),
    timeToFirstToken: new Histogram({
      name: "guard_stream_time_to_first_token_seconds",
      help: "Streamed answers: from the request reaching the guard (admission queueing included: the client's view) to the first event carrying model output passing on to the client.",
      labelNames: ["route", "tier"] as const,
      buckets: TTFT_BUCKETS,
      registers,
    }),
    timePerOutputToken: new Histogram({
      name: "guard_stream_time_per_output_token_seconds",
      help: "Streamed answers: (last output event time - first output event time) / (output tokens - 1), the tokens from the stream's usage when it reported any, else the number of output events. Only streams whose output came in at least two chunks.",
      labelNames: ["route", "tier"] as const,
      buckets: TPOT_BUCKETS,
      registers,
    }),
    streams: new Counter({
      name: "guard_streams_total",
      help: "Streamed 2xx answers (text/event-stream, or NDJSON where the route declares it) by how they ended: completed, cancelled (client or Envoy left), cut (the guard ended or replaced the stream).",
      labelNames: ["route", "outcome"] as const,
      registers,
    }),
    eventsSkipped: new Counter({
      name: "guard_usage_events_skipped_total",
      help: "Stream events (SSE events, NDJSON lines) larger than 1 MiB the usage stage skipped unread: passed on unchanged, but their usage and output are not counted (a usage event among them shows as guard_stream_usage_missing_total).",
      labelNames: ["route"] as const,
      registers,
    }),
  };
}
