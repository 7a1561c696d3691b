// The gRPC server's own metrics: what its limits are, what they hold now and whom they refused.
// Registered once per server on the guard's private registry, so they outlive reloads like the
// core metrics.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** What the limits hold now, read at each scrape. */
export interface ServerReadings {
  readonly connections: () => number;
  readonly streams: () => number;
  readonly bufferedBytes: () => number;
  readonly queuedReplyBytes: () => number;
  readonly heapRatio: () => number;
}

export interface ServerMetrics {
  /** Streams and connections the server refused or ended because a limit was reached. */
  readonly refusals: Counter<"reason">;
  /** From the peer's half-close to the guard's status (Envoy waits 1 s, then resets). */
  readonly halfCloseAnswer: Histogram;
  /** Streams the peer reset after half-closing, before the guard's status went out. */
  readonly halfCloseResets: Counter;
}

/**
 * Seconds from a peer's half-close to the guard's status: well under a millisecond when the guard
 * keeps up, and the last bucket at Envoy's default remote-close timeout (1 s), past which it resets.
 */
const HALF_CLOSE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

export function createServerMetrics(
  registry: Registry,
  limits: Readonly<Record<string, number>>,
  readings: ServerReadings,
): ServerMetrics {
  const registers = [registry];
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  };
  const configured = new Gauge({
    name: "guard_grpc_limit",
    help: "The gRPC server's configured limits (config section limits), by key.",
    labelNames: ["limit"],
    registers,
  });
  for (const [limit, value] of Object.entries(limits)) configured.set({ limit }, value);
  gauge("guard_grpc_connections", "gRPC connections open now (limits.maxConnections).", readings.connections);
  gauge(
    "guard_grpc_streams",
    "gRPC streams open now, all connections and methods (limits.maxStreams).",
    readings.streams,
  );
  gauge(
    "guard_grpc_buffered_bytes",
    "Message bytes the server holds across all streams, from a message's prefix until it was handled (limits.maxBufferedBytes).",
    readings.bufferedBytes,
  );
  gauge(
    "guard_grpc_queued_reply_bytes",
    "Reply bytes written and waiting for the peers' HTTP/2 flow-control windows, all connections together.",
    readings.queuedReplyBytes,
  );
  gauge(
    "guard_grpc_heap_used_ratio",
    "V8's used heap ÷ its limit, as the overload signal last read it (limits.overloadHeapRatio).",
    readings.heapRatio,
  );
  return {
    halfCloseAnswer: new Histogram({
      name: "guard_grpc_half_close_answer_seconds",
      help: "Time from a peer's half-close of a stream to the guard's status on it (Envoy with ext_proc_graceful_grpc_close resets a stream not closed within its remote-close timeout, 1 s by default).",
      buckets: HALF_CLOSE_BUCKETS,
      registers,
    }),
    halfCloseResets: new Counter({
      name: "guard_grpc_half_close_resets_total",
      help: "Streams the peer reset after half-closing them, before the guard's status went out: with Envoy, a graceful close that took longer than its remote-close timeout.",
      registers,
    }),
    refusals: new Counter({
      name: "guard_grpc_refusals_total",
      help: "Streams and connections the gRPC server refused or ended because a limit was reached, by reason: stream_reply_queue, connection_reply_queue (RESOURCE_EXHAUSTED: the peer does not read its replies), memory_budget, max_streams, heap_overload (RESOURCE_EXHAUSTED), stream_idle, stream_lifetime (DEADLINE_EXCEEDED), max_connections, preface_timeout (connection closed).",
      labelNames: ["reason"],
      registers,
    }),
  };
}
