// The latency-model benchmark through the real stack: Envoy + guard (embedded default config) + the
// demo model configured as the shed benchmark's capacity-limited batching server, sent the shed
// benchmark's request mix. Per request, an Envoy access log (added to the rendered config for this
// run only) records the guard's prediction (the complexity stage's dynamic metadata,
// predictedLatencyMs) and the upstream's real latency (Envoy's upstream transmit-begin to
// receive-begin, the span the guard's own measurement covers), so the error is the deployed
// model's, request by request. The same live trace is then replayed through the old and the new
// model in process: before and after on identical samples.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { loadGuardConfigObject, startStack } from "../src/devstack/stack.js";
import { CHAT_PATH, demoCompletionTokens, demoWorkMs, type ScoredRequest, type Trace } from "./latency-model-sim.js";
import { metricSum } from "./metrics-text.js";
import { DEFAULT_OPTIONS, requestFactory, type ServerModel } from "./shed/workload.js";

export interface LivePhase {
  /** 0: one at a time; otherwise the open-loop rate as a share of the measured capacity. */
  readonly load: number;
  readonly requests: number;
}

export interface LiveOptions {
  readonly server: ServerModel;
  readonly phases: readonly LivePhase[];
  readonly seed: number;
  readonly clientTimeoutMs: number;
  readonly log: (line: string) => void;
}

export interface LiveRecord {
  readonly index: number;
  readonly phase: number;
  readonly status: number;
  /** The guard's prediction when it scored the request (whole ms, as the metadata carries it). */
  readonly predictedMs: number | undefined;
  /** Envoy's upstream time: first byte sent upstream to first byte received. */
  readonly upstreamMs: number | undefined;
  readonly startedAt: number;
  readonly tier: string | undefined;
}

export interface LiveRun {
  readonly capacityPerSecond: number;
  readonly records: readonly LiveRecord[];
  readonly requests: readonly ScoredRequest[];
  /** The guard's fitted coefficients after the run (guard_complexity_model_coefficient{route="chat"}). */
  readonly coefficients: Record<string, number>;
  readonly guardFitted: boolean;
  /** The guard's /metrics text after the run. */
  readonly metrics: string;
}

const BENCH_ID = "x-bench-id";
const LOG_NAME = "access.log";

/** An access log on the listener's connection manager, one JSON object per request. */
function withAccessLog(path: string): (yaml: string) => string {
  const anchor = "                stat_prefix: inference\n";
  const indent = "                ";
  const lines = [
    "access_log:",
    "  - name: envoy.access_loggers.file",
    "    typed_config:",
    '      "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
    `      path: ${path}`,
    "      log_format:",
    "        json_format:",
    `          id: "%REQ(${BENCH_ID.toUpperCase()})%"`,
    '          status: "%RESPONSE_CODE%"',
    '          start: "%START_TIME(%s.%6f)%"',
    '          upstreamUs: "%COMMON_DURATION(US_TX_BEG:US_RX_BEG:us)%"',
    '          predictedMs: "%DYNAMIC_METADATA(inference_guard:complexity:predictedLatencyMs)%"',
    '          tier: "%DYNAMIC_METADATA(inference_guard:complexity:tier)%"',
  ];
  return (yaml) => {
    if (!yaml.includes(anchor)) throw new Error("the Envoy config has no listener connection manager to log");
    return yaml.replace(anchor, `${anchor}${lines.map((line) => `${indent}${line}\n`).join("")}`);
  };
}

interface Answered {
  readonly status: number;
  /** usage.completion_tokens of a JSON answer. */
  readonly completionTokens: number | undefined;
}

async function post(url: string, body: string, id: string, timeoutMs: number): Promise<Answered> {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", [BENCH_ID]: id },
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    let completionTokens: number | undefined;
    try {
      const usage = (JSON.parse(text) as { usage?: { completion_tokens?: unknown } }).usage;
      if (typeof usage?.completion_tokens === "number") completionTokens = usage.completion_tokens;
    } catch {
      // Not JSON (an error page): no usage.
    }
    return { status: response.status, completionTokens };
  } catch {
    return { status: 0, completionTokens: undefined };
  }
}

/** Saturated closed loop (1.5 × capacity workers) for a few seconds: completed requests per second. */
async function measureCapacity(
  url: string,
  server: ServerModel,
  bodies: readonly string[],
  ms: number,
): Promise<number> {
  const end = performance.now() + ms;
  let next = 0;
  let served = 0;
  await Promise.all(
    Array.from({ length: Math.ceil(server.capacity * 1.5) }, async () => {
      while (performance.now() < end) {
        const body = bodies[next++ % bodies.length] as string;
        if ((await post(url, body, `calibration-${next}`, 10_000)).status === 200) served++;
      }
    }),
  );
  return (served / ms) * 1000;
}

function parseNumber(value: unknown): number | undefined {
  const parsed = typeof value === "number" ? value : typeof value === "string" ? Number(value) : Number.NaN;
  return Number.isFinite(parsed) && value !== "" && value !== "-" ? parsed : undefined;
}

interface Sent {
  readonly capacity: number;
  readonly bodies: readonly string[];
  readonly requests: readonly ScoredRequest[];
  readonly statuses: readonly number[];
  readonly coefficients: Record<string, number>;
  readonly guardFitted: boolean;
  readonly metrics: string;
}

/** Starts the stack, sends every phase, reads the guard's model and stops the stack (flushing the log). */
async function sendAll(options: LiveOptions, logPath: string): Promise<Sent> {
  const { server, log } = options;
  const config = { ...(await loadGuardConfigObject()), log: { level: "warn" } };
  const stack = await startStack({ guardConfig: config, editEnvoyConfig: withAccessLog(logPath) });
  const url = `${stack.url}${CHAT_PATH}`;
  try {
    // The demo's knobs carry the same names as the bench's server model.
    const configured = await fetch(`${stack.light.url}/__demo/config`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(server),
    });
    if (!configured.ok) throw new Error(`demo config refused: ${await configured.text()}`);
    const total = options.phases.reduce((sum, phase) => sum + phase.requests, 0);
    const next = requestFactory({ ...DEFAULT_OPTIONS, server, seed: options.seed });
    const bodies = Array.from({ length: total }, (_, index) => next(index).body);
    // Capacity from a different stream of the same mix, so the measured requests stay unseen.
    const calibration = requestFactory({ ...DEFAULT_OPTIONS, server, seed: options.seed + 1000 });
    // Straight to the demo model: the guard's model must not learn from the calibration.
    const capacity = await measureCapacity(
      `${stack.light.url}${CHAT_PATH}`,
      server,
      Array.from({ length: 400 }, (_, index) => calibration(index).body),
      6_000,
    );
    log(`capacity ${capacity.toFixed(2)} requests/s`);

    const answers = new Array<Answered>(total).fill({ status: 0, completionTokens: undefined });
    let offset = 0;
    for (const [phaseIndex, phase] of options.phases.entries()) {
      const first = offset;
      const started = performance.now();
      if (phase.load === 0) {
        for (let index = first; index < first + phase.requests; index++)
          answers[index] = await post(url, bodies[index] as string, String(index), options.clientTimeoutMs);
      } else {
        const rate = phase.load * capacity;
        const pending: Promise<void>[] = [];
        for (let index = first; index < first + phase.requests; index++) {
          const due = started + ((index - first) * 1000) / rate;
          const wait = due - performance.now();
          if (wait > 1) await sleep(wait);
          pending.push(
            post(url, bodies[index] as string, String(index), options.clientTimeoutMs).then((answered) => {
              answers[index] = answered;
            }),
          );
        }
        await Promise.all(pending);
      }
      // Every request of the phase has been answered (or timed out): the next starts on an idle model.
      offset += phase.requests;
      const ok = answers.slice(first, offset).filter((answered) => answered.status === 200).length;
      log(
        `phase ${phaseIndex} (load ${phase.load}): ${phase.requests} requests in ${((performance.now() - started) / 1000).toFixed(1)} s, ${ok} answered 200`,
      );
    }
    const metrics = await stack.guard?.metrics();
    const coefficients: Record<string, number> = {};
    for (const feature of ["intercept", "input_ktokens", "output_ktokens", "images", "tensor_mb", "other_mb"]) {
      const value =
        metrics === undefined
          ? undefined
          : metricSum(metrics, "guard_complexity_model_coefficient", { route: "chat", feature });
      if (value !== undefined) coefficients[feature] = value;
    }
    const guardFitted =
      metrics !== undefined && metricSum(metrics, "guard_complexity_model_fitted", { route: "chat" }) === 1;
    // The demo's own report of each answer's length (its usage), as the guard read it.
    const requests: ScoredRequest[] = bodies.map((body, index) => ({
      body,
      workMs: demoWorkMs(body, server),
      completionTokens: answers[index]?.completionTokens ?? demoCompletionTokens(body),
    }));
    const statuses = answers.map((answered) => answered.status);
    return { capacity, bodies, requests, statuses, coefficients, guardFitted, metrics: metrics ?? "" };
  } finally {
    // Envoy writes its access log out every 10 s (--file-flush-interval-msec) and when it stops.
    await stack.stop();
  }
}

export async function runLive(options: LiveOptions): Promise<LiveRun> {
  const logDir = await mkdtemp(join(tmpdir(), "latency-model-"));
  const logPath = join(logDir, LOG_NAME);
  try {
    const { capacity, bodies, requests, statuses, coefficients, guardFitted, metrics } = await sendAll(
      options,
      logPath,
    );
    const text = await readFile(logPath, "utf8");
    const byId = new Map<string, Record<string, unknown>>();
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue;
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (typeof entry.id === "string") byId.set(entry.id, entry);
    }
    let phase = 0;
    let phaseEnd = options.phases[0]?.requests ?? 0;
    const records: LiveRecord[] = bodies.map((_, index) => {
      while (index >= phaseEnd && phase < options.phases.length - 1) {
        phase++;
        phaseEnd += options.phases[phase]?.requests ?? 0;
      }
      const entry = byId.get(String(index));
      const upstreamUs = parseNumber(entry?.upstreamUs);
      const tier = entry?.tier;
      return {
        index,
        phase,
        status: parseNumber(entry?.status) ?? statuses[index] ?? 0,
        predictedMs: parseNumber(entry?.predictedMs),
        upstreamMs: upstreamUs === undefined ? undefined : upstreamUs / 1000,
        startedAt: (parseNumber(entry?.start) ?? 0) * 1000,
        tier: typeof tier === "string" && tier !== "-" ? tier : undefined,
      };
    });
    return { capacityPerSecond: capacity, records, requests, coefficients, guardFitted, metrics };
  } finally {
    await rm(logDir, { recursive: true, force: true });
  }
}

/**
 * The live run as a trace the in-process models can replay: each answered request predicted when
 * Envoy received it and learned when its upstream answered.
 */
export function liveTrace(run: LiveRun): Trace[] {
  const entries: Trace[] = [];
  for (const record of run.records) {
    const request = run.requests[record.index];
    if (request === undefined || record.status !== 200 || record.upstreamMs === undefined) continue;
    entries.push({
      request,
      predictAt: record.startedAt,
      learnAt: record.startedAt + record.upstreamMs,
      observedMs: record.upstreamMs,
    });
  }
  return entries;
}
