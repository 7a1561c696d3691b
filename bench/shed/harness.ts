// Load-shedding evaluation (issue 5): real Envoy + demo model configured as a capacity-limited
// batching server, under an open-loop offered load sweep, in set-ups run back to back: no
// protection (Envoy alone), Envoy's adaptive_concurrency filter alone, the guard, and a lower
// bound ("critical_only", below).
//
// Open loop: request i is sent at start + i/rate whatever happened to earlier ones, so a slow
// server cannot slow the offered load down (a closed loop would hide overload). Every point is
// bounded in count (rate × duration) and time (client timeout).
import { setTimeout as sleep } from "node:timers/promises";
import { loadGuardConfigObject, type Stack, type StackOptions, startStack } from "../../src/devstack/stack.js";
import { percentile } from "../../src/util/percentile.js";
import { gaussian, seededRandom } from "../../src/util/seeded-random.js";
import { metricSum, metricValue } from "../metrics-text.js";

/**
 * "critical_only" is a measurement, not a protection: Envoy alone, and of each point's schedule only
 * the critical requests are sent (same sizes, same send times, the others' slots left empty). That is
 * what an oracle admission would give that shed every non-critical request at no cost and nothing
 * critical, so its critical p99 bounds from below what any admission keeping all critical requests
 * (in the server's FIFO order) can reach on this server.
 */
export type Variant = "none" | "adaptive_concurrency" | "guard" | "critical_only";
export type Priority = "critical" | "standard" | "sheddable";
export const PRIORITIES: readonly Priority[] = ["critical", "standard", "sheddable"];

/** The demo model as a batching server: `capacity` slots, per-request work from its size. */
export interface ServerModel {
  readonly capacity: number;
  readonly baseLatencyMs: number;
  readonly perTokenMs: number;
  readonly perKbMs: number;
  readonly batchPenalty: number;
}

export interface ShedBenchOptions {
  readonly variants: readonly Variant[];
  /** Offered load as multiples of the measured capacity. */
  readonly points: readonly number[];
  readonly pointMs: number;
  readonly warmUpMs: number;
  readonly calibrationMs: number;
  /**
   * Requests sent one at a time on the idle stack to measure its unloaded latency. A p99 needs
   * about a hundred samples: a few seconds' worth (~15) only shows the p90-p95 of the size spread.
   */
  readonly unloadedSamples: number;
  readonly clientTimeoutMs: number;
  readonly server: ServerModel;
  /** A response is good when it is a 200 within sloFactor × its unloaded work time (at least sloFloorMs). */
  readonly sloFactor: number;
  readonly sloFloorMs: number;
  readonly mix: Readonly<Record<Priority, number>>;
  readonly seed: number;
  /** Replaces top-level keys of the guard's embedded default config (e.g. `admission`). */
  readonly guardConfig?: Readonly<Record<string, unknown>>;
  readonly log?: (line: string) => void;
}

export const DEFAULT_OPTIONS: ShedBenchOptions = {
  variants: ["none", "adaptive_concurrency", "guard", "critical_only"],
  points: [0.5, 1, 2, 4],
  pointMs: 12_000,
  warmUpMs: 6_000,
  calibrationMs: 6_000,
  unloadedSamples: 150,
  clientTimeoutMs: 10_000,
  server: { capacity: 4, baseLatencyMs: 60, perTokenMs: 1, perKbMs: 20, batchPenalty: 0.5 },
  sloFactor: 4,
  sloFloorMs: 500,
  mix: { critical: 0.2, standard: 0.5, sheddable: 0.3 },
  seed: 7,
};

interface BenchRequest {
  readonly priority: Priority;
  readonly body: string;
  /** Service time alone on the server (its own unloaded latency, without the batch penalty). */
  readonly workMs: number;
  readonly sloMs: number;
}

interface Sample {
  readonly priority: Priority;
  /** 0: no answer within the client timeout (or a transport error). */
  readonly status: number;
  readonly ms: number;
  readonly workMs: number;
  readonly good: boolean;
  /** Answered by the protection layer (guard or Envoy filter), not by the model. */
  readonly shed: boolean;
  /** How late the generator sent it against its schedule. */
  readonly lagMs: number;
  /** Status and the guard's shed reason, e.g. "429 shed.overload", "504", "0" (no answer). */
  readonly outcome: string;
}

export interface ClassStats {
  readonly offered: number;
  readonly ok: number;
  readonly good: number;
  readonly shed: number;
  /** Neither served nor shed: timeouts, resets, other errors. */
  readonly failed: number;
  readonly keptShare: number;
  readonly shedShare: number;
  readonly admittedP50Ms: number | null;
  readonly admittedP99Ms: number | null;
  /**
   * p99 of latency ÷ the request's own unloaded work: the slow-down independent of which sizes
   * happened to land in the sample (a p99 of ~70 requests is their largest one's latency).
   */
  readonly admittedSlowdownP99: number | null;
}

export interface PointResult {
  readonly variant: Variant;
  readonly load: number;
  readonly offeredPerSecond: number;
  readonly durationSeconds: number;
  readonly goodputPerSecond: number;
  /** Goodput in server work (ms of unloaded work per second of good answers) ÷ measured capacity. */
  readonly goodputShareOfCapacity: number;
  readonly admittedP50Ms: number | null;
  readonly admittedP99Ms: number | null;
  readonly shedAnswerP50Ms: number | null;
  readonly shedAnswerP99Ms: number | null;
  readonly generatorLagP99Ms: number;
  /** Answers other than 200 by status and shed reason. */
  readonly failures: Readonly<Record<string, number>>;
  readonly byClass: Readonly<Record<Priority, ClassStats>>;
  /** What the server and the guard looked like during the point (sampled every TELEMETRY_EVERY_MS). */
  readonly telemetry: Telemetry;
}

export interface Telemetry {
  /** Mean busy batch slots ÷ capacity: how much of the server the point kept working. */
  readonly serverUtilisation: number;
  /** Mean requests waiting in the model server's own queue. */
  readonly serverQueue: number;
  /** The guard's budget (cost units) and in-flight cost, mean over the point; null without a guard. */
  readonly guardLimitCost: number | null;
  readonly guardInFlightCost: number | null;
  /**
   * Per class, requests the guard admitted after queueing and their mean wait there (from its queue
   * wait histogram, over the point): with the class's latency it splits guard wait from server
   * time. null without a guard.
   */
  readonly guardQueue: Readonly<Record<Priority, QueueWait>> | null;
}

export interface QueueWait {
  readonly admittedAfterWait: number;
  readonly meanWaitMs: number | null;
}

export interface UnloadedLatency {
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** p99 of latency ÷ the request's own work (the stack's per-request overhead, mostly). */
  readonly slowdownP99: number;
}

export interface Calibration {
  /** Requests per second and unloaded work-ms per second the saturated server completes. */
  readonly capacityPerSecond: number;
  readonly capacityWorkMsPerSecond: number;
  /** p50/p99 of single requests on an idle stack, per variant. */
  readonly unloaded: Readonly<Partial<Record<Variant, UnloadedLatency>>>;
}

export interface ShedReport {
  readonly date: string;
  readonly options: Omit<ShedBenchOptions, "log">;
  readonly calibration: Calibration;
  readonly points: readonly PointResult[];
}

const CHAT_PATH = "/v1/chat/completions";
const WORDS = [
  "order",
  "refund",
  "delivery",
  "invoice",
  "account",
  "error",
  "update",
  "please",
  "status",
  "help",
  "late",
  "thanks",
];

function logNormal(random: () => number, median: number, sigma: number): number {
  return median * Math.exp(sigma * gaussian(random));
}

/** A realistic spread: prompts from a few words to a few KiB, output budgets from 8 to 1024 tokens. */
export function requestFactory(options: ShedBenchOptions): (index: number) => BenchRequest {
  const random = seededRandom(options.seed);
  const { server, mix } = options;
  return (index) => {
    const draw = random();
    const priority: Priority =
      draw < mix.critical ? "critical" : draw < mix.critical + mix.standard ? "standard" : "sheddable";
    const maxTokens = Math.round(Math.min(1024, Math.max(8, logNormal(random, 96, 0.8))));
    const promptChars = Math.round(Math.min(8_000, Math.max(20, logNormal(random, 400, 1))));
    let prompt = `#${index} `;
    while (prompt.length < promptChars) prompt += `${WORDS[Math.floor(random() * WORDS.length)]} `;
    const body = JSON.stringify({
      model: "demo",
      max_tokens: maxTokens,
      messages: [{ role: "user", content: prompt }],
    });
    const workMs =
      server.baseLatencyMs + server.perTokenMs * maxTokens + (server.perKbMs * Buffer.byteLength(body)) / 1024;
    return { priority, body, workMs, sloMs: Math.max(options.sloFloorMs, options.sloFactor * workMs) };
  };
}

function round(value: number | null | undefined, digits = 1): number | null {
  return value === null || value === undefined ? null : Math.round(value * 10 ** digits) / 10 ** digits;
}

async function send(url: string, request: BenchRequest, timeoutMs: number, lagMs: number): Promise<Sample> {
  const started = performance.now();
  let status = 0;
  let fromModel = false;
  let shedReason: string | null = null;
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-guard-priority": request.priority },
      body: request.body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.arrayBuffer();
    status = response.status;
    fromModel = response.headers.get("x-demo-pool") !== null;
    shedReason = response.headers.get("x-guard-shed-reason");
  } catch {
    status = 0;
  }
  const ms = performance.now() - started;
  return {
    priority: request.priority,
    status,
    ms,
    workMs: request.workMs,
    good: status === 200 && ms <= request.sloMs,
    shed: (status === 429 || status === 503) && !fromModel,
    lagMs,
    outcome: shedReason === null ? String(status) : `${status} ${shedReason}`,
  };
}

/**
 * Fixed-rate schedule: the i-th request is due at start + i / rate, independent of answers. Requests
 * `send` rejects keep their place in the schedule but are not sent (and not sampled).
 */
async function openLoop(
  url: string,
  rate: number,
  durationMs: number,
  next: (index: number) => BenchRequest,
  timeoutMs: number,
  sends: (request: BenchRequest) => boolean = () => true,
): Promise<Sample[]> {
  const count = Math.max(1, Math.floor((rate * durationMs) / 1000));
  const start = performance.now();
  const pending: Promise<Sample>[] = [];
  for (let i = 0; i < count; i++) {
    const request = next(i);
    if (!sends(request)) continue;
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    pending.push(send(url, request, timeoutMs, Math.max(0, performance.now() - due)));
  }
  return Promise.all(pending);
}

/** `count` requests, each sent when the previous one has been answered: latency with nothing else in flight. */
async function oneAtATime(
  url: string,
  count: number,
  next: (index: number) => BenchRequest,
  timeoutMs: number,
): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let i = 0; i < count; i++) samples.push(await send(url, next(i), timeoutMs, 0));
  return samples;
}

/** Closed loop with `concurrency` workers for `durationMs`: saturation throughput or unloaded latency. */
async function closedLoop(
  url: string,
  concurrency: number,
  durationMs: number,
  next: (index: number) => BenchRequest,
  timeoutMs: number,
): Promise<Sample[]> {
  const samples: Sample[] = [];
  const end = performance.now() + durationMs;
  let index = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) samples.push(await send(url, next(index++), timeoutMs, 0));
    }),
  );
  return samples;
}

function classStats(samples: readonly Sample[]): ClassStats {
  const ok = samples.filter((sample) => sample.status === 200);
  const shed = samples.filter((sample) => sample.shed).length;
  const offered = samples.length;
  return {
    offered,
    ok: ok.length,
    good: samples.filter((sample) => sample.good).length,
    shed,
    failed: offered - ok.length - shed,
    keptShare: round(offered === 0 ? 1 : ok.length / offered, 4) ?? 1,
    shedShare: round(offered === 0 ? 0 : shed / offered, 4) ?? 0,
    admittedP50Ms: round(
      percentile(
        ok.map((sample) => sample.ms),
        0.5,
      ),
    ),
    admittedP99Ms: round(
      percentile(
        ok.map((sample) => sample.ms),
        0.99,
      ),
    ),
    admittedSlowdownP99: round(
      percentile(
        ok.map((sample) => sample.ms / sample.workMs),
        0.99,
      ),
      2,
    ),
  };
}

export function summarise(
  variant: Variant,
  load: number,
  rate: number,
  durationMs: number,
  samples: readonly Sample[],
  calibration: Pick<Calibration, "capacityWorkMsPerSecond">,
  telemetry: Telemetry,
): PointResult {
  const seconds = durationMs / 1000;
  const good = samples.filter((sample) => sample.good);
  const ok = samples.filter((sample) => sample.status === 200);
  const shed = samples.filter((sample) => sample.shed);
  const goodWorkPerSecond = good.reduce((sum, sample) => sum + sample.workMs, 0) / seconds;
  return {
    variant,
    load,
    offeredPerSecond: round(rate, 2) ?? 0,
    durationSeconds: seconds,
    goodputPerSecond: round(good.length / seconds, 2) ?? 0,
    goodputShareOfCapacity: round(goodWorkPerSecond / calibration.capacityWorkMsPerSecond, 3) ?? 0,
    admittedP50Ms: round(
      percentile(
        ok.map((sample) => sample.ms),
        0.5,
      ),
    ),
    admittedP99Ms: round(
      percentile(
        ok.map((sample) => sample.ms),
        0.99,
      ),
    ),
    shedAnswerP50Ms: round(
      percentile(
        shed.map((sample) => sample.ms),
        0.5,
      ),
    ),
    shedAnswerP99Ms: round(
      percentile(
        shed.map((sample) => sample.ms),
        0.99,
      ),
    ),
    generatorLagP99Ms:
      round(
        percentile(
          samples.map((sample) => sample.lagMs),
          0.99,
        ),
      ) ?? 0,
    failures: countOutcomes(samples.filter((sample) => sample.status !== 200)),
    byClass: {
      critical: classStats(samples.filter((sample) => sample.priority === "critical")),
      standard: classStats(samples.filter((sample) => sample.priority === "standard")),
      sheddable: classStats(samples.filter((sample) => sample.priority === "sheddable")),
    },
    telemetry,
  };
}

const TELEMETRY_EVERY_MS = 250;

function mean(values: readonly number[]): number | null {
  return values.length === 0 ? null : values.reduce((sum, value) => sum + value, 0) / values.length;
}

const QUEUE_WAIT = "guard_admission_queue_wait_seconds";

async function guardMetrics(stack: Stack): Promise<string | undefined> {
  try {
    return await stack.guard?.metrics();
  } catch {
    return undefined;
  }
}

/** Queue waits of admitted requests between two scrapes of the guard's metrics, per class. */
function queueWaits(before: string, after: string): Record<Priority, QueueWait> {
  const wait = (priority: Priority): QueueWait => {
    const labels = { priority, result: "admitted" };
    const count = metricSum(after, `${QUEUE_WAIT}_count`, labels) - metricSum(before, `${QUEUE_WAIT}_count`, labels);
    const seconds = metricSum(after, `${QUEUE_WAIT}_sum`, labels) - metricSum(before, `${QUEUE_WAIT}_sum`, labels);
    return { admittedAfterWait: count, meanWaitMs: count === 0 ? null : round((seconds * 1000) / count) };
  };
  return { critical: wait("critical"), standard: wait("standard"), sheddable: wait("sheddable") };
}

/** Samples the model's batch and the guard's budget until stopped; monitoring only, never fails the run. */
function sampleTelemetry(stack: Stack, capacity: number): () => Promise<Telemetry> {
  const startMetrics = guardMetrics(stack);
  const active: number[] = [];
  const waiting: number[] = [];
  const limits: number[] = [];
  const inFlight: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const stats = (await (await fetch(`${stack.light.url}/__demo/stats`)).json()) as {
          active: number;
          waiting: number;
        };
        active.push(stats.active);
        waiting.push(stats.waiting);
        if (stack.guard !== undefined) {
          const text = await stack.guard.metrics();
          const limit = metricValue(text, "guard_admission_limit_cost");
          const cost = metricValue(text, "guard_admission_inflight_cost");
          if (limit !== undefined) limits.push(limit);
          if (cost !== undefined) inFlight.push(cost);
        }
      } catch {
        // A missed sample only thins the telemetry.
      }
      await sleep(TELEMETRY_EVERY_MS);
    }
  })();
  return async () => {
    running = false;
    await loop;
    const before = await startMetrics;
    const after = await guardMetrics(stack);
    return {
      serverUtilisation: round((mean(active) ?? 0) / capacity, 3) ?? 0,
      serverQueue: round(mean(waiting) ?? 0, 2) ?? 0,
      guardLimitCost: round(mean(limits), 0),
      guardInFlightCost: round(mean(inFlight), 0),
      guardQueue: before === undefined || after === undefined ? null : queueWaits(before, after),
    };
  };
}

function countOutcomes(samples: readonly Sample[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const sample of samples) counts[sample.outcome] = (counts[sample.outcome] ?? 0) + 1;
  return counts;
}

function demoArgs(server: ServerModel): string[] {
  return [
    "--capacity",
    String(server.capacity),
    "--base-latency-ms",
    String(server.baseLatencyMs),
    "--per-token-ms",
    String(server.perTokenMs),
    "--per-kb-ms",
    String(server.perKbMs),
    "--batch-penalty",
    String(server.batchPenalty),
  ];
}

async function stackOptions(
  variant: Variant,
  server: ServerModel,
  guardConfig: Readonly<Record<string, unknown>>,
): Promise<StackOptions> {
  const demo = { light: demoArgs(server) };
  if (variant === "none" || variant === "critical_only") return { withGuard: false, demoArgs: demo };
  if (variant === "adaptive_concurrency")
    return { withGuard: false, extraVariants: ["adaptive_concurrency"], demoArgs: demo };
  // The embedded default config (its admission settings are the defaults), logging quietly.
  const config = { ...(await loadGuardConfigObject()), log: { level: "warn" }, ...guardConfig };
  return { guardConfig: config, demoArgs: demo };
}

/** Waits until the model has nothing in flight, so one point's backlog does not leak into the next. */
async function drained(stack: Stack, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const stats = (await (await fetch(`${stack.light.url}/__demo/stats`)).json()) as { inFlight: number };
    if (stats.inFlight === 0) return;
    await sleep(200);
  }
}

export async function runShedBench(options: ShedBenchOptions): Promise<ShedReport> {
  const log = options.log ?? (() => undefined);
  // Every variant gets the same requests at the same stage (each stage its own seeded stream), so
  // set-ups compare like with like; a shared stream would hand each a different size draw.
  const requestsFor = (stream: number): ((index: number) => BenchRequest) =>
    requestFactory({ ...options, seed: options.seed + stream });
  const points: PointResult[] = [];
  const unloaded: Partial<Record<Variant, UnloadedLatency>> = {};
  let capacity: Pick<Calibration, "capacityPerSecond" | "capacityWorkMsPerSecond"> | undefined;
  for (const variant of options.variants) {
    const stack = await startStack(await stackOptions(variant, options.server, options.guardConfig ?? {}));
    const url = `${stack.url}${CHAT_PATH}`;
    try {
      const idle = await oneAtATime(url, options.unloadedSamples, requestsFor(1), options.clientTimeoutMs);
      const idleServed = idle.filter((sample) => sample.status === 200);
      const idleMs = idleServed.map((sample) => sample.ms);
      unloaded[variant] = {
        p50Ms: round(percentile(idleMs, 0.5)) ?? 0,
        p99Ms: round(percentile(idleMs, 0.99)) ?? 0,
        slowdownP99:
          round(
            percentile(
              idleServed.map((sample) => sample.ms / sample.workMs),
              0.99,
            ),
            2,
          ) ?? 0,
      };
      if (capacity === undefined) {
        // Saturated closed loop: every slot busy, a short queue behind them.
        const saturated = await closedLoop(
          url,
          Math.ceil(options.server.capacity * 1.5),
          options.calibrationMs,
          requestsFor(0),
          options.clientTimeoutMs,
        );
        const served = saturated.filter((sample) => sample.status === 200);
        const seconds = options.calibrationMs / 1000;
        capacity = {
          capacityPerSecond: round(served.length / seconds, 2) ?? 0,
          capacityWorkMsPerSecond: round(served.reduce((sum, sample) => sum + sample.workMs, 0) / seconds, 1) ?? 0,
        };
        log(`capacity: ${capacity.capacityPerSecond} req/s (${capacity.capacityWorkMsPerSecond} work-ms/s)`);
        await drained(stack, options.clientTimeoutMs);
      }
      const perSecond = capacity.capacityPerSecond;
      log(`${variant}: unloaded p50 ${unloaded[variant]?.p50Ms} ms, p99 ${unloaded[variant]?.p99Ms} ms`);
      if (options.warmUpMs > 0) {
        await openLoop(url, perSecond, options.warmUpMs, requestsFor(2), options.clientTimeoutMs);
        await drained(stack, options.clientTimeoutMs);
      }
      for (const [index, load] of options.points.entries()) {
        const rate = load * perSecond;
        const stopTelemetry = sampleTelemetry(stack, options.server.capacity);
        const sends =
          variant === "critical_only" ? (request: BenchRequest) => request.priority === "critical" : undefined;
        const samples = await openLoop(
          url,
          rate,
          options.pointMs,
          requestsFor(3 + index),
          options.clientTimeoutMs,
          sends,
        );
        const result = summarise(variant, load, rate, options.pointMs, samples, capacity, await stopTelemetry());
        points.push(result);
        log(
          `${variant} ${load}x: goodput ${result.goodputPerSecond}/s (${Math.round(result.goodputShareOfCapacity * 100)}% of capacity), critical kept ${result.byClass.critical.keptShare}, not 200: ${JSON.stringify(result.failures)}, telemetry ${JSON.stringify(result.telemetry)}`,
        );
        await drained(stack, options.clientTimeoutMs);
      }
    } finally {
      await stack.stop();
    }
  }
  const { log: _log, ...recorded } = options;
  return {
    date: new Date().toISOString(),
    options: recorded,
    calibration: { ...(capacity ?? { capacityPerSecond: 0, capacityWorkMsPerSecond: 0 }), unloaded },
    points,
  };
}

function cell(value: number | null, width: number): string {
  return (value === null ? "-" : String(value)).padStart(width);
}

/** A fixed-width table, one line per variant and load point. */
export function formatTable(report: ShedReport): string {
  const header =
    "variant               load  offered/s  goodput/s  %cap  crit kept  p50/p99 crit ms   p50/p99 std ms    p50/p99 shd ms    shed crit/std/shd   shed answer p50/p99 ms";
  const lines = [header, "-".repeat(header.length)];
  for (const point of report.points) {
    const c = point.byClass;
    lines.push(
      [
        point.variant.padEnd(20),
        `${point.load}x`.padStart(5),
        cell(point.offeredPerSecond, 10),
        cell(point.goodputPerSecond, 10),
        cell(Math.round(point.goodputShareOfCapacity * 100), 5),
        cell(c.critical.keptShare, 10),
        `${cell(c.critical.admittedP50Ms, 7)}/${cell(c.critical.admittedP99Ms, -1)}`.padEnd(17),
        `${cell(c.standard.admittedP50Ms, 7)}/${cell(c.standard.admittedP99Ms, -1)}`.padEnd(17),
        `${cell(c.sheddable.admittedP50Ms, 7)}/${cell(c.sheddable.admittedP99Ms, -1)}`.padEnd(17),
        `${c.critical.shedShare}/${c.standard.shedShare}/${c.sheddable.shedShare}`.padStart(19),
        `${cell(point.shedAnswerP50Ms, 9)}/${cell(point.shedAnswerP99Ms, -1)}`,
      ].join(" "),
    );
  }
  return lines.join("\n");
}
