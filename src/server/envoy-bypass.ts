// What reached a model without the guard, as the Envoy it serves counts it. With
// failure_mode_allow: true Envoy sends a request on unguarded when its ext_proc stream fails (the
// guard unreachable or refusing, a message answered later than message_timeout, the guard
// cluster's circuit breakers full); the guard cannot see those requests, so it reads Envoy's own
// counters from its admin API at each scrape and exports them as guard_envoy_unguarded_total: an
// exporter of Envoy's cumulative counters, so the series continues across guard restarts (the
// requests Envoy let through while the guard was down included) and resets only with Envoy.
import { Counter, Gauge, type Registry } from "prom-client";

export const BYPASS_REASONS = ["message_timeout", "overflow", "stream_error"] as const;
export type BypassReason = (typeof BYPASS_REASONS)[number];

/** Envoy's counters the split reads, summed over every ext_proc filter (one per stat_prefix). */
export interface EnvoyExtProcCounts {
  /** Requests Envoy sent on without the guard's answer: `http.*.ext_proc.failure_mode_allowed`. */
  readonly failureModeAllowed: number;
  readonly messageTimeouts: number;
  /** Streams the guard cluster's circuit breakers refused: `upstream_rq_{active,pending}_overflow`. */
  readonly overflows: number;
}

interface EnvoyStatsJson {
  readonly stats?: ReadonlyArray<{ readonly name?: unknown; readonly value?: unknown }>;
}

const EXT_PROC = /^http\.[^.]+(?:\..+)?\.ext_proc\.(failure_mode_allowed|message_timeouts)$/;

export function extProcCounts(json: EnvoyStatsJson, guardCluster: string): EnvoyExtProcCounts {
  const overflow = new Set([
    `cluster.${guardCluster}.upstream_rq_active_overflow`,
    `cluster.${guardCluster}.upstream_rq_pending_overflow`,
  ]);
  let failureModeAllowed = 0;
  let messageTimeouts = 0;
  let overflows = 0;
  for (const { name, value } of json.stats ?? []) {
    if (typeof name !== "string" || typeof value !== "number") continue;
    if (overflow.has(name)) overflows += value;
    const counter = EXT_PROC.exec(name)?.[1];
    if (counter === "failure_mode_allowed") failureModeAllowed += value;
    else if (counter === "message_timeouts") messageTimeouts += value;
  }
  return { failureModeAllowed, messageTimeouts, overflows };
}

/**
 * The unguarded requests by cause. Envoy counts them as one number; each failure it also counts
 * by cause became an unguarded request when failure_mode_allow is true (and none did when it is
 * false, where failure_mode_allowed stays 0), so the causes are taken from the total in turn and
 * what no cause explains is a stream error (the guard unreachable, a reset, a gRPC error status).
 */
export function unguardedByReason(counts: EnvoyExtProcCounts): Record<BypassReason, number> {
  const messageTimeout = Math.min(counts.messageTimeouts, counts.failureModeAllowed);
  const overflow = Math.min(counts.overflows, counts.failureModeAllowed - messageTimeout);
  return {
    message_timeout: messageTimeout,
    overflow,
    stream_error: counts.failureModeAllowed - messageTimeout - overflow,
  };
}

export interface EnvoyBypassOptions {
  /** Envoy's admin address, e.g. http://127.0.0.1:9901 (config envoy.adminUrl). */
  readonly adminUrl: string;
  /** The Envoy cluster that reaches the guard (envoy.guardCluster). */
  readonly guardCluster: string;
  readonly timeoutMs: number;
}

/** One read of Envoy: which admin address, and whether it answered. */
interface Reading {
  readonly adminUrl: string;
  readonly ok: boolean;
}

/** Registers the exported metrics; each scrape of the registry reads Envoy once. */
export function registerEnvoyBypass(registry: Registry, options: () => EnvoyBypassOptions | undefined): void {
  const registers = [registry];
  let last: Record<BypassReason, number> | undefined;
  const readEnvoy = async (): Promise<Reading | undefined> => {
    const current = options();
    if (current === undefined) return undefined;
    try {
      const filter = encodeURIComponent(filterFor(current));
      const response = await fetch(`${current.adminUrl}/stats?format=json&filter=${filter}`, {
        signal: AbortSignal.timeout(current.timeoutMs),
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      last = unguardedByReason(extProcCounts((await response.json()) as EnvoyStatsJson, current.guardCluster));
      return { adminUrl: current.adminUrl, ok: true };
    } catch {
      return { adminUrl: current.adminUrl, ok: false };
    }
  };
  // A scrape collects every metric at once: both of these share the one read it makes.
  let reading: Promise<Reading | undefined> | undefined;
  const read = (): Promise<Reading | undefined> => {
    reading ??= readEnvoy().finally(() => {
      reading = undefined;
    });
    return reading;
  };
  new Gauge({
    name: "guard_envoy_stats_up",
    help: "1 when the last read of Envoy's admin counters succeeded, 0 when it failed, by admin address (envoy.adminUrl); absent when it is not set.",
    labelNames: ["envoy"],
    registers,
    async collect() {
      const result = await read();
      // A reload may have changed or removed the address: only the current one has a series.
      this.reset();
      if (result !== undefined) this.set({ envoy: result.adminUrl }, result.ok ? 1 : 0);
    },
  });
  new Counter({
    name: "guard_envoy_unguarded_total",
    help: "Requests the Envoy this guard serves sent to a model without the guard (failure_mode_allow: true), by cause: message_timeout (the guard answered later than message_timeout), overflow (the guard cluster's circuit breakers were full), stream_error (the guard unreachable, a reset or gRPC error). Envoy's own cumulative counters, read at each scrape from envoy.adminUrl.",
    labelNames: ["reason"],
    registers,
    async collect() {
      await read();
      // Envoy unreachable: the last counts stay, so a gap in reading is not a counter reset.
      if (last === undefined) return;
      this.reset();
      for (const reason of BYPASS_REASONS) this.inc({ reason }, last[reason]);
    },
  });
}

function filterFor(options: EnvoyBypassOptions): string {
  const cluster = options.guardCluster.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return `(ext_proc\\.(failure_mode_allowed|message_timeouts)$)|(^cluster\\.${cluster}\\.upstream_rq_(active|pending)_overflow$)`;
}
