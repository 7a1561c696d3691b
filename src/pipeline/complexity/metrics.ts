// The stage's metrics, all on the registry it was given. Labels: route and tier names come from
// configuration, reasons and features from fixed vocabularies, so every label set is bounded.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { LatencyModel, UpdateResult } from "./model.js";
import type { OutputEstimate, OutputLearnResult } from "./output.js";

/** Cost units: powers of 4 from 16 (a one-line prompt) to 4 Mi (a huge multimodal job). */
export const COST_BUCKETS = [16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304];
/** Estimated prompt tokens: powers of 4 from 16 to 1 Mi (beyond any current context window). */
export const TOKEN_BUCKETS = [16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576];
/** Actual / predicted latency, reported / expected output tokens: symmetric around 1 on a log scale. */
export const RATIO_BUCKETS = [0.125, 0.25, 0.5, 0.67, 0.8, 0.9, 1, 1.11, 1.25, 1.5, 2, 4, 8];

export type ModelUpdateOutcome = UpdateResult | "skipped_streamed" | "skipped_status";
export type OutputUpdateOutcome = OutputLearnResult | "skipped_no_usage";

export interface ComplexityMetrics {
  readonly cost: Histogram<"route" | "tier">;
  readonly inputTokens: Histogram<"route" | "tier">;
  readonly tierDecisions: Counter<"route" | "tier">;
  readonly fallbacks: Counter<"route" | "reason">;
  readonly latencyRatio: Histogram<"route">;
  readonly modelUpdates: Counter<"route" | "result">;
  readonly outputRatio: Histogram<"route" | "tier">;
  readonly outputUpdates: Counter<"route" | "result">;
}

/** The route's learned state, read at scrape time: exported as it is then. */
export interface RouteLearners {
  readonly model: LatencyModel;
  readonly output: OutputEstimate;
}

export function createComplexityMetrics(
  registry: Registry,
  routes: ReadonlyMap<string, RouteLearners>,
): ComplexityMetrics {
  const registers = [registry];
  new Gauge({
    name: "guard_complexity_output_tokens_estimate",
    help: "Output tokens per generation a request without max_tokens is expected to produce: learned from reported completion tokens once output.minSamples were, defaultMaxOutputTokens before",
    labelNames: ["route"] as const,
    registers,
    collect() {
      for (const [route, learners] of routes) this.set({ route }, learners.output.tokens);
    },
  });
  new Gauge({
    name: "guard_complexity_model_coefficient",
    help: "Fitted latency model coefficient per feature (ms per unit: intercept ms, ms per 1000 input/output tokens, per image, per MB)",
    labelNames: ["route", "feature"] as const,
    registers,
    collect() {
      for (const [route, { model }] of routes) {
        for (const [feature, value] of model.coefficients()) this.set({ route, feature }, value);
      }
    },
  });
  new Gauge({
    name: "guard_complexity_model_residual_variance",
    help: "Exponentially weighted variance of the latency model's a-priori residuals (ms²); capacity planning needs the spread, not only the mean",
    labelNames: ["route"] as const,
    registers,
    collect() {
      for (const [route, { model }] of routes) this.set({ route }, model.residualVariance);
    },
  });
  new Gauge({
    name: "guard_complexity_model_fitted",
    help: "1 when the route's latency predictions come from the fitted model, 0 while the configured prior is used",
    labelNames: ["route"] as const,
    registers,
    collect() {
      for (const [route, { model }] of routes) this.set({ route }, model.fitted ? 1 : 0);
    },
  });
  const metrics: ComplexityMetrics = {
    cost: new Histogram({
      name: "guard_request_cost",
      help: "Estimated request cost in cost units (config weights × features)",
      labelNames: ["route", "tier"] as const,
      buckets: COST_BUCKETS,
      registers,
    }),
    inputTokens: new Histogram({
      name: "guard_estimated_input_tokens",
      help: "Estimated prompt tokens (text, tools and images) of requests whose body was understood",
      labelNames: ["route", "tier"] as const,
      buckets: TOKEN_BUCKETS,
      registers,
    }),
    tierDecisions: new Counter({
      name: "guard_complexity_tier_decisions_total",
      help: "Requests routed to each tier",
      labelNames: ["route", "tier"] as const,
      registers,
    }),
    fallbacks: new Counter({
      name: "guard_complexity_estimate_fallbacks_total",
      help: "Requests scored by size because the body could not be read as a known API (reason: non_json, truncated, too_deep, too_large, unknown_shape, unexpected_fields)",
      labelNames: ["route", "reason"] as const,
      registers,
    }),
    latencyRatio: new Histogram({
      name: "guard_complexity_latency_ratio",
      help: "Observed upstream latency (a streamed answer's whole generation) divided by the latency predicted when the request was scored",
      labelNames: ["route"] as const,
      buckets: RATIO_BUCKETS,
      registers,
    }),
    modelUpdates: new Counter({
      name: "guard_complexity_model_updates_total",
      help: "Completed requests offered to the latency model by result (fitted, rejected, reset, skipped_streamed, skipped_status)",
      labelNames: ["route", "result"] as const,
      registers,
    }),
    outputRatio: new Histogram({
      name: "guard_complexity_output_ratio",
      help: "Completion tokens the upstream reported divided by the output tokens the estimate expected",
      labelNames: ["route", "tier"] as const,
      buckets: RATIO_BUCKETS,
      registers,
    }),
    outputUpdates: new Counter({
      name: "guard_complexity_output_updates_total",
      help: "Completed generation requests offered to the output estimate by result (learned, skipped_truncated, skipped_no_usage)",
      labelNames: ["route", "result"] as const,
      registers,
    }),
  };
  return metrics;
}
