// The gRPC server's own metrics: what its limits are, what they hold now and whom they refused.
// Registered once per server on the guard's private registry, so they outlive reloads like the
// core metrics.
import { Counter, Gauge, type Registry } from "prom-client";

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
}

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
    refusals: new Counter({
      name: "guard_grpc_refusals_total",
      help: "Streams and connections the gRPC server refused or ended because a limit was reached, by reason: stream_reply_queue, connection_reply_queue (RESOURCE_EXHAUSTED: the peer does not read its replies), memory_budget, max_streams, heap_overload (RESOURCE_EXHAUSTED), stream_idle, stream_lifetime (DEADLINE_EXCEEDED), max_connections, preface_timeout (connection closed).",
      labelNames: ["reason"],
      registers,
    }),
  };
}
