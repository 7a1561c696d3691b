// The gRPC server's own metrics: what its limits hold and whom they refused. Registered once per
// server on the guard's private registry, so they outlive reloads like the core metrics.
import { Counter, Gauge, type Registry } from "prom-client";

export interface ServerMetrics {
  /** Streams and connections the server refused or ended because a limit was reached. */
  readonly refusals: Counter<"reason">;
  readonly queuedReplyBytes: Gauge;
}

export function createServerMetrics(registry: Registry, queuedReplyBytes: () => number): ServerMetrics {
  const registers = [registry];
  return {
    refusals: new Counter({
      name: "guard_grpc_refusals_total",
      help: "ext_proc streams ended with RESOURCE_EXHAUSTED because a limit was reached, by reason: stream_reply_queue, connection_reply_queue (the peer does not read its replies).",
      labelNames: ["reason"],
      registers,
    }),
    queuedReplyBytes: new Gauge({
      name: "guard_grpc_queued_reply_bytes",
      help: "Reply bytes written and waiting for the peers' HTTP/2 flow-control windows, all connections together.",
      registers,
      collect() {
        this.set(queuedReplyBytes());
      },
    }),
  };
}
