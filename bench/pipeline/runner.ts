// One round of one configuration: start the stack, prove with a probe request that it does what the
// configuration says, warm up, then measure each open-loop rate and the closed-loop maximum while
// reading the guard's and Envoy's CPU time and the guard's memory from /proc.
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type Stack, startStack } from "../../src/devstack/stack.js";
import { metricSamples, metricSum } from "../metrics-text.js";
import { type BenchConfiguration, REQUEST_HEADERS, REQUEST_PATH } from "./configurations.js";
import { type CpuProfile, sampleShare } from "./cpu-profile.js";
import { type LoadShape, type LoadTarget, runLoad } from "./load.js";
import { cpuSeconds, memoryMb, pinToCpus, processTree, sampleRss } from "./procfs.js";
import { type LatencySummary, summariseLatency } from "./stats.js";

export interface BenchSettings {
  readonly rates: readonly number[];
  readonly durationSec: number;
  readonly closedDurationSec: number;
  readonly warmupSec: number;
  /** h2load connections (one process each) for the open-loop rates. */
  readonly connections: number;
  /** Connections of the closed loop, each with one request in flight. */
  readonly closedConnections: number;
  readonly runs: number;
  /** Envoy and the guard on CPU 0, load generator and demo model on CPU 1 (see docs/bench.md). */
  readonly pin: boolean;
  readonly workDir: string;
  readonly body: string;
  /** Runs the guard under node --cpu-prof, its profiles written here (the drift monitor's cost). */
  readonly cpuProfileDir?: string;
}

export interface PointRun extends LatencySummary {
  /** 2xx answers per second of load. */
  readonly achievedRps: number;
  /** null when the configuration has no ext_proc server. */
  readonly guardCpuUsPerRequest: number | null;
  readonly envoyCpuUsPerRequest: number;
  /** Peak resident memory of the guard (or peer) sampled during the load. */
  readonly guardRssMb: number | null;
  readonly urisWrapped: boolean;
  readonly loadFailures: readonly string[];
}

export interface Probe {
  readonly status: number;
  readonly responseBytes: number;
  readonly headers: Readonly<Record<string, string>>;
  /** Expected headers that were missing or different: the configuration did not do what it says. */
  readonly mismatches: readonly string[];
}

export interface RoundResult {
  readonly configuration: string;
  readonly round: number;
  readonly probe?: Probe;
  /** Keyed "open@<rps>" and "closed". */
  readonly points: Readonly<Record<string, PointRun>>;
  readonly guardHwmMb: number | null;
  /** Bytes held by the in-process cache tier at the end of the round (guard_cache_bytes). */
  readonly cacheBytes: number | null;
  /** The guard's own account of the round; null without a guard. */
  readonly stageTimes: StageTimes | null;
  /** From the round's CPU profile (cpuProfileDir): the drift monitor's µs per response. */
  readonly driftUsPerResponse: number | null;
  readonly error?: string;
}

/** Where the guard's handler time went over a round, read from its /metrics at the end. */
export interface StageTimes {
  /** Requests the guard saw (probe and warm-up included): guard_requests_total. */
  readonly requests: number;
  /** Seconds in the ext_proc message handlers: guard_extproc_message_seconds. */
  readonly handlerSeconds: number;
  /** Per stage and phase: calls and seconds (guard_stage_duration_seconds). */
  readonly stages: readonly StageTime[];
}

export interface StageTime {
  readonly stage: string;
  readonly phase: string;
  readonly calls: number;
  readonly seconds: number;
}

export function pointKey(shape: LoadShape): string {
  return shape.kind === "open" ? `open@${shape.rps}` : "closed";
}

const SUT_CPUS = "0";
const LOAD_CPUS = "1";
const RSS_SAMPLE_MS = 250;
/** Lets queues drain between points so one point's backlog does not land in the next. */
const SETTLE_MS = 300;

function serverPid(stack: Stack): number | undefined {
  return stack.guard?.process().child.pid ?? stack.peer?.child.pid;
}

async function probe(stack: Stack, configuration: BenchConfiguration, body: string): Promise<Probe> {
  const url = `${stack.url}${REQUEST_PATH}${configuration.uniqueUris ? "?bench=probe" : ""}`;
  const headers = Object.fromEntries(REQUEST_HEADERS.map((line) => line.split(": ", 2) as [string, string]));
  const send = async (): Promise<Response> =>
    fetch(url, { method: "POST", headers, body, signal: AbortSignal.timeout(10_000) });
  // The hit path needs the answer stored first.
  if (!configuration.uniqueUris) await (await send()).arrayBuffer();
  const response = await send();
  const text = await response.text();
  const seen = Object.fromEntries([...response.headers].filter(([name]) => name.startsWith("x-")));
  const mismatches: string[] = [];
  if (response.status !== 200) mismatches.push(`status ${response.status}: ${text.slice(0, 200)}`);
  for (const [name, expected] of Object.entries(configuration.expectHeaders)) {
    const actual = response.headers.get(name);
    if (actual !== expected)
      mismatches.push(`${name}: expected ${expected ?? "(absent)"}, got ${actual ?? "(absent)"}`);
  }
  return { status: response.status, responseBytes: Buffer.byteLength(text), headers: seen, mismatches };
}

function cacheBytes(metrics: string): number | null {
  const values = [...metrics.matchAll(/^guard_cache_bytes(?:\{[^}]*\})? (\S+)$/gm)].map((match) => Number(match[1]));
  return values.length === 0 ? null : values.reduce((sum, value) => sum + value, 0);
}

export function stageTimesOf(metrics: string): StageTimes {
  const key = (labels: ReadonlyMap<string, string>): string => `${labels.get("stage")}\u0000${labels.get("phase")}`;
  const seconds = new Map(
    metricSamples(metrics, "guard_stage_duration_seconds_sum").map((sample) => [key(sample.labels), sample.value]),
  );
  return {
    requests: metricSum(metrics, "guard_requests_total"),
    handlerSeconds: metricSum(metrics, "guard_extproc_message_seconds_sum"),
    stages: metricSamples(metrics, "guard_stage_duration_seconds_count").map((sample) => ({
      stage: sample.labels.get("stage") ?? "",
      phase: sample.labels.get("phase") ?? "",
      calls: sample.value,
      seconds: seconds.get(key(sample.labels)) ?? 0,
    })),
  };
}

/**
 * The drift monitor's CPU per response: its share of the guard's profile (node --cpu-prof writes
 * it at exit) times the guard's CPU time over the round.
 */
async function driftUsPerResponse(
  dir: string,
  pid: number,
  guardCpuSeconds: number,
  responses: number,
): Promise<number | null> {
  const file = (await readdir(dir)).find((name) => name.includes(`.${pid}.`) && name.endsWith(".cpuprofile"));
  if (file === undefined || responses === 0) return null;
  const profile = JSON.parse(await readFile(join(dir, file), "utf8")) as CpuProfile;
  return (sampleShare(profile, (url) => url.includes("/pipeline/drift/")) * guardCpuSeconds * 1e6) / responses;
}

async function measurePoint(
  stack: Stack,
  target: LoadTarget,
  shape: LoadShape,
  settings: BenchSettings,
  tag: string,
  workDir: string,
): Promise<PointRun> {
  const pid = serverPid(stack);
  const guardPids = pid === undefined ? undefined : processTree(pid);
  const envoyPid = stack.envoy.process.child.pid;
  const envoyPids = envoyPid === undefined ? [] : [envoyPid];
  const guardCpuBefore = guardPids === undefined ? 0 : cpuSeconds(guardPids);
  const envoyCpuBefore = cpuSeconds(envoyPids);
  const rss = guardPids === undefined ? undefined : sampleRss(guardPids, RSS_SAMPLE_MS);
  const closed = shape.kind === "closed";
  const load = await runLoad(target, shape, {
    connections: closed ? settings.closedConnections : settings.connections,
    durationSec: closed ? settings.closedDurationSec : settings.durationSec,
    workDir,
    tag,
    ...(settings.pin ? { cpus: LOAD_CPUS } : {}),
  });
  const guardRssMb = rss?.stop() ?? null;
  const requests = Math.max(1, load.rows.length);
  const latency = summariseLatency(load.rows);
  return {
    ...latency,
    achievedRps: latency.ok / load.durationSec,
    guardCpuUsPerRequest: guardPids === undefined ? null : ((cpuSeconds(guardPids) - guardCpuBefore) * 1e6) / requests,
    envoyCpuUsPerRequest: ((cpuSeconds(envoyPids) - envoyCpuBefore) * 1e6) / requests,
    guardRssMb,
    urisWrapped: load.urisWrapped,
    loadFailures: load.failures,
  };
}

function pinStack(stack: Stack): void {
  const server = serverPid(stack);
  const sut = [stack.envoy.process.child.pid, ...(server === undefined ? [] : processTree(server))];
  const load = [stack.light.process?.child.pid, stack.heavy.process?.child.pid];
  pinToCpus(
    sut.filter((pid): pid is number => pid !== undefined),
    SUT_CPUS,
  );
  pinToCpus(
    load.filter((pid): pid is number => pid !== undefined),
    LOAD_CPUS,
  );
}

export async function runRound(
  configuration: BenchConfiguration,
  round: number,
  settings: BenchSettings,
): Promise<RoundResult> {
  const workDir = join(settings.workDir, `${configuration.id}-${round}`);
  await mkdir(workDir, { recursive: true });
  const bodyFile = join(workDir, "body.json");
  await writeFile(bodyFile, settings.body);
  let stack: Stack | undefined;
  try {
    const options = await configuration.stackOptions();
    stack = await startStack(
      settings.cpuProfileDir === undefined
        ? options
        : {
            ...options,
            guardNodeArgs: ["--cpu-prof", "--cpu-prof-interval", "100", "--cpu-prof-dir", settings.cpuProfileDir],
          },
    );
    if (settings.pin) pinStack(stack);
    const checked = await probe(stack, configuration, settings.body);
    const target: LoadTarget = {
      baseUrl: stack.url,
      path: REQUEST_PATH,
      bodyFile,
      headers: REQUEST_HEADERS,
      uniqueUris: configuration.uniqueUris,
    };
    // As fast as it goes: V8 optimises hot code after thousands of calls, and a warm-up at the
    // first (lowest) rate left the first measured point running half-compiled code.
    await runLoad(
      target,
      { kind: "closed" },
      {
        connections: settings.closedConnections,
        durationSec: settings.warmupSec,
        workDir,
        tag: `${configuration.id}-${round}-warmup`,
        ...(settings.pin ? { cpus: LOAD_CPUS } : {}),
      },
    );
    const shapes: LoadShape[] = [...settings.rates.map((rps) => ({ kind: "open" as const, rps })), { kind: "closed" }];
    const points: Record<string, PointRun> = {};
    for (const shape of shapes) {
      await sleep(SETTLE_MS);
      const key = pointKey(shape);
      points[key] = await measurePoint(
        stack,
        target,
        shape,
        settings,
        `${configuration.id}-${round}-${key.replace("@", "")}`,
        workDir,
      );
    }
    const pid = serverPid(stack);
    const guardHwmMb = pid === undefined ? null : memoryMb(processTree(pid), "VmHWM");
    const metrics = stack.guard === undefined ? undefined : await stack.guard.metrics();
    const stageTimes = metrics === undefined ? null : stageTimesOf(metrics);
    const guardCpuSeconds = pid === undefined ? 0 : cpuSeconds(processTree(pid));
    await stack.stop();
    stack = undefined;
    return {
      configuration: configuration.id,
      round,
      probe: checked,
      points,
      guardHwmMb,
      cacheBytes: metrics === undefined ? null : cacheBytes(metrics),
      stageTimes,
      driftUsPerResponse:
        settings.cpuProfileDir === undefined || pid === undefined || stageTimes === null
          ? null
          : await driftUsPerResponse(settings.cpuProfileDir, pid, guardCpuSeconds, stageTimes.requests),
    };
  } catch (error) {
    return {
      configuration: configuration.id,
      round,
      points: {},
      guardHwmMb: null,
      cacheBytes: null,
      stageTimes: null,
      driftUsPerResponse: null,
      error: (error as Error).message.slice(0, 2_000),
    };
  } finally {
    await stack?.stop();
  }
}
