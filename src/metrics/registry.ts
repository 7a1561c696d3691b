// The guard's private Prometheus registry and the metrics of its core (ext_proc streams and the
// pipeline runner). Capabilities register their own guard_* metrics on the same registry.
import { Counter, collectDefaultMetrics, Gauge } from "prom-client";
import { BoundHistogram } from "./bound-histogram.js";
import { ReloadableRegistry } from "./reloadable.js";

/**
 * Guard-side processing time of one ext_proc message, 50 µs to 2.5 s: the low buckets resolve the
 * sub-millisecond pass-through budget, the high ones admission queueing.
 */
export const MESSAGE_SECONDS_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];

/**
 * One stage hook's time, 10 µs to 10 s: most hooks take microseconds (the low buckets tell a slow
 * stage from a fast one), while admission's request hook includes its queue wait and the cache's
 * its single-flight wait (up to the queue's and Envoy's longest waits).
 */
export const STAGE_SECONDS_BUCKETS = [
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
  10,
];

const REDUNDANT_TOTALS = [
  "guard_nodejs_active_handles_total",
  "guard_nodejs_active_requests_total",
  "guard_nodejs_active_resources_total",
];

export interface CoreMetrics {
  readonly registry: ReloadableRegistry;
  readonly streams: Counter<"outcome">;
  readonly activeStreams: Gauge;
  readonly messages: Counter<"frame">;
  readonly anomalies: Counter<"kind">;
  readonly modeOverrideIgnored: Gauge;
  readonly messageSeconds: BoundHistogram<"frame">;
  readonly stageErrors: Counter<"stage" | "phase">;
  readonly stageSeconds: BoundHistogram<"stage" | "phase">;
  readonly requests: Counter<"route" | "answered_by" | "code_class">;
  readonly replies: Counter<"route" | "reason" | "status">;
  readonly reloads: Counter<"result">;
  readonly lastReload: Gauge<"result">;
}

export function createCoreMetrics(version: string): CoreMetrics {
  const registry = new ReloadableRegistry();
  collectDefaultMetrics({ register: registry, prefix: "guard_" });
  // prom-client exports these totals as gauges named *_total, which Prometheus reserves for counters
  // (promtool check metrics rejects them); the same numbers are sum() of the per-type gauges.
  for (const name of REDUNDANT_TOTALS) registry.removeSingleMetric(name);
  const registers = [registry];
  new Gauge({ name: "guard_build_info", help: "Guard build; always 1.", labelNames: ["version"], registers }).set(
    { version },
    1,
  );
  return {
    registry,
    streams: new Counter({
      name: "guard_extproc_streams_total",
      help: "ext_proc streams by how they ended: completed, cancelled (ended before the exchange finished), error.",
      labelNames: ["outcome"],
      registers,
    }),
    activeStreams: new Gauge({ name: "guard_extproc_active_streams", help: "ext_proc streams open now.", registers }),
    messages: new Counter({
      name: "guard_extproc_messages_total",
      help: "ext_proc messages received, by frame kind.",
      labelNames: ["frame"],
      registers,
    }),
    anomalies: new Counter({
      name: "guard_extproc_anomalies_total",
      help: "Protocol situations the guard tolerated: unexpected_order, duplicate_body, streamed_body, observability_mode, cancelled_mid_request, handler_error, unknown_frame, undecodable_frame, asked_frame_missing (the stream closed before a phase the guard asked for came: the client left, or Envoy dropped the mode_override).",
      labelNames: ["kind"],
      registers,
    }),
    modeOverrideIgnored: new Gauge({
      name: "guard_extproc_mode_override_ignored",
      help: "1 while Envoy drops the guard's mode_override (5 streams in a row closed at once without the phase the guard asked for): those exchanges pass unchecked. 0 otherwise.",
      registers,
    }),
    messageSeconds: new BoundHistogram({
      name: "guard_extproc_message_seconds",
      help: "Time the guard took to answer one ext_proc message (includes admission queueing).",
      labelNames: ["frame"],
      buckets: MESSAGE_SECONDS_BUCKETS,
      registers,
    }),
    stageErrors: new Counter({
      name: "guard_stage_errors_total",
      help: "Stage hooks that threw; the stage's effect was skipped and the request went on (fail-open).",
      labelNames: ["stage", "phase"],
      registers,
    }),
    stageSeconds: new BoundHistogram({
      name: "guard_stage_duration_seconds",
      help: "Time one stage hook took, by stage and phase (request_headers, request_body, response_headers, response_body, response_chunk, response_trailers, end); includes admission queueing and cache single-flight waits.",
      labelNames: ["stage", "phase"],
      buckets: STAGE_SECONDS_BUCKETS,
      registers,
    }),
    requests: new Counter({
      name: "guard_requests_total",
      help: "Requests on configured routes by who answered (upstream, guard, unknown when the response was not observed) and status class.",
      labelNames: ["route", "answered_by", "code_class"],
      registers,
    }),
    replies: new Counter({
      name: "guard_replies_total",
      help: "Answers the guard produced itself (shed, cache hit, contract enforcement), by reason and status.",
      labelNames: ["route", "reason", "status"],
      registers,
    }),
    reloads: new Counter({
      name: "guard_config_reloads_total",
      help: "Configuration reloads (SIGHUP or file change) by result; a failed reload keeps the running config.",
      labelNames: ["result"],
      registers,
    }),
    lastReload: new Gauge({
      name: "guard_config_last_reload_timestamp_seconds",
      help: "Unix time of the last reload attempt, by result.",
      labelNames: ["result"],
      registers,
    }),
  };
}
