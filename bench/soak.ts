// Soak: mixed traffic through Envoy + guard for a long time, sampling the guard's RSS, heap and
// event-loop lag from its /metrics, and reporting their slopes (least squares) and every
// unexpected 5xx. "Expected" answers: the model's 200/4xx, the guard's own replies (they carry
// x-guard-reason: contract violations, sheds). Anything else 5xx, or a transport error, is not.
// With --abuse (issue 25's evaluation), the same traffic runs beside clients that cancel 20% of
// streams mid-answer and every hostile local client of bench/abusers.ts (or --abusers a,b and
// --cancel-share S); --no-graceful-close runs Envoy without ext_proc_graceful_grpc_close, so every
// ext_proc stream ends in a reset.
// Run: make soak (30 min) or node dist/bench/soak.js --minutes 5 [--abuse] [--no-graceful-close]
import { mkdir, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { PROJECT_ROOT } from "../src/devstack/envoy.js";
import { startStack } from "../src/devstack/stack.js";
import { percentile } from "../src/util/percentile.js";
import { envoyStats, resettingEveryStream } from "../test/helpers/e2e.js";
import { cancelAfterFirstBytes, mixedShot, type Result, type Shot, send } from "../test/helpers/load.js";
import { ABUSERS, type AbuserName, type AbuserReport } from "./abusers.js";
import { metricSamples, metricSum, metricValue } from "./metrics-text.js";

/** An event-loop delay longer than this is a stall (issue 25: none allowed under abuse). */
const STALL_MS = 100;

export interface SoakOptions {
  readonly durationMs: number;
  /** Requests per second offered (paced, not closed-loop: the machine is shared). */
  readonly rate: number;
  readonly sampleEveryMs: number;
  readonly log?: (line: string) => void;
  /** Share of all streams that clients cancel after the answer's first bytes (0 by default). */
  readonly cancelShare?: number;
  /** Hostile local clients at the guard's ext_proc port for the whole run (bench/abusers.ts). */
  readonly abusers?: readonly AbuserName[];
  /** Envoy's ext_proc_graceful_grpc_close (true by default, as shipped). */
  readonly gracefulClose?: boolean;
}

export interface Sample {
  readonly atS: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly eventLoopLagP99Ms: number;
  readonly eventLoopLagMaxMs: number;
  /** The machine's 1-minute load average: the shared cores' business beside the run. */
  readonly loadAverage: number;
}

export interface Slope {
  /** Least-squares slope per minute over the samples after warm-up. */
  readonly perMinute: number;
  readonly first: number;
  readonly last: number;
}

export interface SoakReport {
  readonly startedAt: string;
  readonly scenario: {
    readonly cancelShare: number;
    readonly abusers: readonly AbuserName[];
    readonly gracefulClose: boolean;
  };
  readonly durationS: number;
  readonly requests: number;
  readonly ratePerS: number;
  readonly statuses: Record<string, number>;
  readonly byKind: Record<string, Record<string, number>>;
  readonly unexpected5xx: number;
  readonly unexpectedExamples: readonly string[];
  /** Of the traffic mix (not the cancelling clients): answers that were expected ÷ requests. */
  readonly successShare: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  /** How the cancelling clients' requests went ("200 cancelled", "error AbortError", ...). */
  readonly cancelled: Record<string, number>;
  readonly abusers: readonly AbuserReport[];
  /** The guard's refusals by reason (guard_grpc_refusals_total) at the end. */
  readonly refusals: Record<string, number>;
  readonly rssMaxBytes: number;
  /** Sampling intervals whose longest event-loop delay passed STALL_MS, and the longest seen. */
  readonly eventLoopStalls: number;
  readonly eventLoopLagMaxMs: number;
  /**
   * Connections to the guard Envoy saw closed by GOAWAY (upstream_cx_close_notify) or by the guard
   * with requests on them (upstream_cx_destroy_remote_with_active_rq).
   */
  readonly envoyGuardConnections: { readonly goaway: number; readonly destroyedWithActiveStreams: number };
  /** Samples in the first 20 % of the run are warm-up (JIT, pools, cache filling) and not fitted. */
  readonly rss: Slope;
  readonly heapUsed: Slope;
  readonly eventLoopLagP99: Slope;
  /** Envoy's ext_proc filter counters at the end (message timeouts, spurious messages, failures). */
  readonly envoyExtProc: Record<string, number>;
  /**
   * How the ext_proc streams ended, from the guard's side: by the guard as the exchange completed,
   * or after Envoy's half-close (answered, or reset by Envoy's remote-close timeout first).
   */
  readonly streamEnds: { readonly halfClosesAnswered: number; readonly halfCloseResets: number };
  readonly samples: readonly Sample[];
}

interface Kind {
  readonly name: string;
  readonly weight: number;
  readonly shot: (index: number) => Shot;
}

/** The traffic mix: every route, cache hits and misses, contract violations, bursts that shed. */
const KINDS: readonly Kind[] = [
  { name: "miss", weight: 40, shot: (index) => mixedShot(index) },
  // 32 distinct cacheable requests, repeated: mostly hits once warm.
  { name: "hit", weight: 30, shot: (index) => mixedShot(index % 32, { "x-guard-cache": "allow" }) },
  {
    name: "violation",
    weight: 8,
    shot: (index) => ({
      path: "/v1/predict/sentiment",
      body: JSON.stringify({ text: `late order ${index}` }),
      headers: { "x-demo-variant": "score_rescaled" },
    }),
  },
  { name: "eta", weight: 8, shot: (index) => ({ path: "/v1/predict/eta", body: JSON.stringify({ order: index }) }) },
  {
    name: "kserve",
    weight: 6,
    shot: (index) => ({
      path: "/v2/models/demo/infer",
      body: JSON.stringify({ inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [index, 1, 2, 3] }] }),
    }),
  },
  { name: "unrouted", weight: 4, shot: () => ({ path: "/v1/unknown", body: "{}" }) },
  { name: "model_error", weight: 4, shot: (index) => ({ ...mixedShot(index), headers: { "x-demo-status": "400" } }) },
];
const TOTAL_WEIGHT = KINDS.reduce((sum, kind) => sum + kind.weight, 0);

function kindFor(index: number): Kind {
  // A fixed interleaving (golden-ratio walk) instead of randomness: runs are comparable.
  let point = ((index * 0.618033988749895) % 1) * TOTAL_WEIGHT;
  for (const kind of KINDS) {
    if (point < kind.weight) return kind;
    point -= kind.weight;
  }
  return KINDS[0] as Kind;
}

function isExpected(result: Result): boolean {
  if (result.status === "error") return false;
  if (result.status < 500) return true;
  // The guard's own answers (contract enforcement, shedding) name their reason.
  return result.headers?.get("x-guard-reason") != null;
}

export function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const meanX = points.reduce((sum, [x]) => sum + x, 0) / n;
  const meanY = points.reduce((sum, [, y]) => sum + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - meanX) * (y - meanY);
    den += (x - meanX) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

function fitted(samples: readonly Sample[], pick: (sample: Sample) => number): Slope {
  const warm = samples.filter((sample) => sample.atS >= (samples.at(-1)?.atS ?? 0) * 0.2);
  return {
    perMinute: slope(warm.map((sample) => [sample.atS / 60, pick(sample)])),
    first: pick(samples[0] as Sample),
    last: pick(samples.at(-1) as Sample),
  };
}

/**
 * Clients that ask for a streamed answer and abandon it after its first bytes, at `share` of all
 * streams (the traffic mix sends `rate`): each cancellation ends an ext_proc stream early.
 */
function cancellingClients(
  url: string,
  rate: number,
  share: number,
  stopped: () => boolean,
  outcomes: Record<string, number>,
): Promise<void>[] {
  if (share <= 0) return [];
  const clients = 4;
  const gapMs = (1000 * clients * (1 - share)) / (rate * share);
  const count = (outcome: string): void => {
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  };
  let next = 0;
  return Array.from({ length: clients }, async (_, client) => {
    await sleep((gapMs * client) / clients);
    while (!stopped()) {
      const began = performance.now();
      count(await cancelAfterFirstBytes(url, `cancelled ${next++}`));
      await sleep(Math.max(0, gapMs - (performance.now() - began)));
    }
  });
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? (() => {});
  const scenario = {
    cancelShare: options.cancelShare ?? 0,
    abusers: options.abusers ?? [],
    gracefulClose: options.gracefulClose ?? true,
  };
  // failure_mode_allow false: a guard failure shows up as a 500, not as silently unguarded traffic.
  const stack = await startStack({
    failureModeAllow: false,
    demoArgs: { light: ["--base-latency-ms", "5"], heavy: ["--base-latency-ms", "20"] },
    ...(scenario.gracefulClose ? {} : { editEnvoyConfig: resettingEveryStream }),
  });
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  const startedAt = new Date();
  const t0 = performance.now();
  const samples: Sample[] = [];
  const results: { kind: string; result: Result }[] = [];
  let unexpected = 0;
  const examples: string[] = [];
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const byKind: Record<string, Record<string, number>> = {};
  const envoyExtProc: Record<string, number> = {};
  let streamEnds = { halfClosesAnswered: 0, halfCloseResets: 0 };
  const cancelled: Record<string, number> = {};
  const refusals: Record<string, number> = {};
  const abuserReports: AbuserReport[] = [];
  const envoyGuardConnections = { goaway: 0, destroyedWithActiveStreams: 0 };
  let stopped = false;
  const workers = 8;
  const perWorkerGapMs = (1000 * workers) / options.rate;
  try {
    const sampler = (async () => {
      while (!stopped) {
        const text = await guard.metrics();
        samples.push({
          atS: (performance.now() - t0) / 1000,
          rssBytes: metricValue(text, "guard_process_resident_memory_bytes") ?? Number.NaN,
          heapUsedBytes: metricValue(text, "guard_nodejs_heap_size_used_bytes") ?? Number.NaN,
          eventLoopLagP99Ms: (metricValue(text, "guard_nodejs_eventloop_lag_p99_seconds") ?? Number.NaN) * 1000,
          eventLoopLagMaxMs: (metricValue(text, "guard_nodejs_eventloop_lag_max_seconds") ?? Number.NaN) * 1000,
          loadAverage: loadavg()[0] ?? Number.NaN,
        });
        const last = samples.at(-1) as Sample;
        log(
          `t=${last.atS.toFixed(0)}s rss=${(last.rssBytes / 2 ** 20).toFixed(1)}MiB heap=${(last.heapUsedBytes / 2 ** 20).toFixed(1)}MiB lag_p99=${last.eventLoopLagP99Ms.toFixed(1)}ms requests=${latencies.length} unexpected=${unexpected}`,
        );
        await sleep(options.sampleEveryMs);
      }
    })();
    let next = 0;
    const traffic = Array.from({ length: workers }, async (_, worker) => {
      await sleep((perWorkerGapMs * worker) / workers);
      while (!stopped) {
        const began = performance.now();
        const index = next++;
        const kind = kindFor(index);
        const result = await send(stack.url, kind.shot(index), 30_000);
        const status = String(result.status);
        statuses[status] = (statuses[status] ?? 0) + 1;
        const perKind = byKind[kind.name] ?? {};
        byKind[kind.name] = perKind;
        perKind[status] = (perKind[status] ?? 0) + 1;
        latencies.push(result.endedAt - result.startedAt);
        if (!isExpected(result)) {
          unexpected++;
          const example = `${kind.name} ${result.shot.path}: ${status} after ${(result.endedAt - result.startedAt).toFixed(0)} ms ${result.error ?? result.text.slice(0, 120)}`;
          if (examples.length < 20) examples.push(example);
          log(`unexpected: ${example}`);
        }
        if (results.length < 1000) results.push({ kind: kind.name, result });
        await sleep(Math.max(0, perWorkerGapMs - (performance.now() - began)));
      }
    });
    const cancelling = cancellingClients(stack.url, options.rate, scenario.cancelShare, () => stopped, cancelled);
    const grpcUrl = `http://${guard.address}`;
    const abusers = scenario.abusers.map((name) => ABUSERS[name](grpcUrl));
    await sleep(options.durationMs);
    stopped = true;
    await Promise.all([...traffic, ...cancelling, sampler]);
    const cluster = await envoyStats(stack.envoy.adminUrl, "cluster.inference_guard.upstream_cx");
    envoyGuardConnections.goaway = cluster.get("cluster.inference_guard.upstream_cx_close_notify") ?? 0;
    envoyGuardConnections.destroyedWithActiveStreams =
      cluster.get("cluster.inference_guard.upstream_cx_destroy_remote_with_active_rq") ?? 0;
    const stats = await (await fetch(`${stack.envoy.adminUrl}/stats?filter=ext_proc`)).text();
    for (const line of stats.split("\n")) {
      const match = /^http\.inference\.ext_proc\.(\w+): (\d+)$/.exec(line);
      if (match?.[1] !== undefined && match[2] !== "0") envoyExtProc[match[1]] = Number(match[2]);
    }
    const text = await guard.metrics();
    streamEnds = {
      halfClosesAnswered: metricSum(text, "guard_grpc_half_close_answer_seconds_count"),
      halfCloseResets: metricSum(text, "guard_grpc_half_close_resets_total"),
    };
    for (const sample of metricSamples(text, "guard_grpc_refusals_total")) {
      const reason = sample.labels.get("reason") ?? "";
      refusals[reason] = (refusals[reason] ?? 0) + sample.value;
    }
    // After the guard's counts were read: an abuser's streams reset as it leaves are not Envoy's.
    abuserReports.push(...(await Promise.all(abusers.map((abuser) => abuser.stop()))));
  } finally {
    await stack.stop();
  }
  const durationS = (performance.now() - t0) / 1000;
  return {
    startedAt: startedAt.toISOString(),
    scenario,
    durationS,
    requests: latencies.length,
    ratePerS: latencies.length / durationS,
    statuses,
    byKind,
    unexpected5xx: unexpected,
    unexpectedExamples: examples,
    successShare: latencies.length === 0 ? 0 : (latencies.length - unexpected) / latencies.length,
    latencyMs: {
      p50: percentile(latencies, 0.5) ?? 0,
      p99: percentile(latencies, 0.99) ?? 0,
      max: percentile(latencies, 1) ?? 0,
    },
    rss: fitted(samples, (sample) => sample.rssBytes),
    heapUsed: fitted(samples, (sample) => sample.heapUsedBytes),
    eventLoopLagP99: fitted(samples, (sample) => sample.eventLoopLagP99Ms),
    cancelled,
    abusers: abuserReports,
    refusals,
    rssMaxBytes: Math.max(...samples.map((sample) => sample.rssBytes)),
    eventLoopStalls: samples.filter((sample) => sample.eventLoopLagMaxMs > STALL_MS).length,
    eventLoopLagMaxMs: Math.max(...samples.map((sample) => sample.eventLoopLagMaxMs)),
    envoyGuardConnections,
    envoyExtProc,
    streamEnds,
    samples,
  };
}

export function summarise(report: SoakReport): string {
  const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
  return [
    `soak ${report.durationS.toFixed(0)} s, ${report.requests} requests (${report.ratePerS.toFixed(0)}/s), statuses ${JSON.stringify(report.statuses)}`,
    `scenario ${JSON.stringify(report.scenario)}`,
    `unexpected 5xx: ${report.unexpected5xx}, expected answers ${(report.successShare * 100).toFixed(3)}%`,
    `latency p50 ${report.latencyMs.p50.toFixed(1)} ms, p99 ${report.latencyMs.p99.toFixed(1)} ms, max ${report.latencyMs.max.toFixed(0)} ms`,
    `RSS ${mib(report.rss.first)} → ${mib(report.rss.last)} MiB, slope ${mib(report.rss.perMinute)} MiB/min after warm-up`,
    `heap used ${mib(report.heapUsed.first)} → ${mib(report.heapUsed.last)} MiB, slope ${mib(report.heapUsed.perMinute)} MiB/min`,
    `Envoy ext_proc: ${JSON.stringify(report.envoyExtProc)}`,
    `stream ends after Envoy's half-close: ${report.streamEnds.halfClosesAnswered} answered, ${report.streamEnds.halfCloseResets} reset`,
    `event-loop lag p99 ${report.eventLoopLagP99.first.toFixed(1)} → ${report.eventLoopLagP99.last.toFixed(1)} ms, slope ${report.eventLoopLagP99.perMinute.toFixed(3)} ms/min`,
    `event-loop stalls over ${STALL_MS} ms: ${report.eventLoopStalls} sampling intervals, longest delay ${report.eventLoopLagMaxMs.toFixed(1)} ms; RSS max ${mib(report.rssMaxBytes)} MiB`,
    `Envoy's connections to the guard: ${report.envoyGuardConnections.goaway} GOAWAY, ${report.envoyGuardConnections.destroyedWithActiveStreams} closed with streams on them`,
    `cancelled streams: ${JSON.stringify(report.cancelled)}`,
    ...report.abusers.map(
      (abuser) => `abuser ${abuser.name}: ${abuser.streams} streams, ${JSON.stringify(abuser.outcomes)}`,
    ),
    `guard refusals: ${JSON.stringify(report.refusals)}`,
  ].join("\n");
}

function parseAbusers(list: string): AbuserName[] {
  const names = list.split(",").filter((name) => name !== "");
  for (const name of names) {
    if (!(name in ABUSERS)) throw new Error(`--abusers: ${name} is not one of ${Object.keys(ABUSERS).join(", ")}`);
  }
  return names as AbuserName[];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      minutes: { type: "string", default: "30" },
      rate: { type: "string", default: "100" },
      out: { type: "string" },
      abuse: { type: "boolean", default: false },
      abusers: { type: "string" },
      "cancel-share": { type: "string" },
      "no-graceful-close": { type: "boolean", default: false },
    },
  });
  const minutes = Number(values.minutes);
  const report = await runSoak({
    durationMs: minutes * 60_000,
    rate: Number(values.rate),
    sampleEveryMs: 2_000,
    log: (line) => console.log(line),
    cancelShare: Number(values["cancel-share"] ?? (values.abuse ? 0.2 : 0)),
    abusers: parseAbusers(values.abusers ?? (values.abuse ? Object.keys(ABUSERS).join(",") : "")),
    gracefulClose: !values["no-graceful-close"],
  });
  const out =
    values.out ??
    join(
      PROJECT_ROOT,
      "bench",
      "results",
      `soak-${report.startedAt.slice(0, 10)}${minutes === 30 ? "" : `-${minutes}min`}${values.abuse || values.abusers !== undefined ? "-abuse" : ""}${values["no-graceful-close"] ? "-resets" : ""}.json`,
    );
  await mkdir(join(out, ".."), { recursive: true });
  await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`${summarise(report)}\nwritten to ${out}`);
  process.exit(report.unexpected5xx === 0 ? 0 : 1);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
