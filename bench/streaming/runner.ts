// One round of one configuration: start the stack, prove with a probe stream that it does what the
// configuration says, then, per concurrency, run the forked clients through a warm-up and a
// measured window while reading the CPU time of the guard (or peer), Envoy and the clients.
import { type ChildProcess, fork } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { type Stack, startStack } from "../../src/devstack/stack.js";
import { metricSum } from "../metrics-text.js";
import { cpuSeconds, processTree } from "../pipeline/procfs.js";
import type { ChildMessage, ClientPlan, ParentMessage, StreamRecord } from "./client.js";
import {
  type Pacing,
  STREAM_PATH,
  type StreamingConfiguration,
  streamRequestBody,
  streamRequestHeaders,
} from "./configurations.js";
import { type PointRun, summarisePoint } from "./stats.js";

export interface StreamingSettings {
  readonly concurrencies: readonly number[];
  readonly durationSec: number;
  readonly warmupSec: number;
  readonly runs: number;
  /** Client processes the users are spread over. */
  readonly clients: number;
  readonly pacing: Pacing;
  /** Node flags for the guard (profiling). */
  readonly guardNodeArgs?: readonly string[];
}

export interface Probe {
  readonly status: number;
  readonly events: number;
  readonly responseBytes: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly mismatches: readonly string[];
}

export interface RoundResult {
  readonly configuration: string;
  readonly round: number;
  readonly probe?: Probe;
  /** Keyed by concurrency. */
  readonly points: Readonly<Record<string, PointRun>>;
  /** guard_contract_checks_total by result, added during the round (guard configurations). */
  readonly checks?: Readonly<Record<string, number>>;
  /**
   * Non-zero error counters at the end of the round, for reading failures: Envoy's ext_proc filter
   * and its cluster to the guard or peer (resets, timeouts), the guard's stream outcomes and anomalies.
   */
  readonly diagnostics?: Readonly<Record<string, number>>;
  readonly error?: string;
}

const CLIENT = fileURLToPath(new URL("./client.js", import.meta.url));
const CHECK_RESULTS = ["passed", "violated", "not_applicable", "skipped", "unverifiable", "not_sampled"];
const STREAM_TIMEOUT_MS = 30_000;
/** Events of the bench's stream (23 and [DONE]), for spreading the users' start over one stream. */
const EVENTS_PER_STREAM = 24;
const SETTLE_MS = 300;

function serverPid(stack: Stack): number | undefined {
  return stack.guard?.process().child.pid ?? stack.peer?.child.pid;
}

async function contractChecks(stack: Stack): Promise<Record<string, number> | undefined> {
  if (stack.guard === undefined) return undefined;
  const text = await stack.guard.metrics();
  return Object.fromEntries(
    CHECK_RESULTS.map((result) => [result, metricSum(text, "guard_contract_checks_total", { result })]),
  );
}

/** Envoy's ext_proc filter counters, and the resets and timeouts on its cluster to the guard or peer. */
async function envoyErrors(stack: Stack): Promise<Record<string, number>> {
  const text = await (await fetch(`${stack.envoy.adminUrl}/stats?filter=ext_proc|inference_guard`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const match = /^(\S+): (\d+)$/.exec(line);
    if (match?.[1] === undefined || match[2] === undefined || match[2] === "0") continue;
    const name = match[1];
    const relevant =
      (name.includes("ext_proc.") && !/(streams_started|stream_msgs_(sent|received)|streams_closed)$/.test(name)) ||
      (name.startsWith("cluster.inference_guard.") && /(reset|timeout|protocol_error|destroy_remote|_5xx)/.test(name));
    if (relevant) out[`envoy ${name}`] = Number(match[2]);
  }
  return out;
}

/** The guard's ext_proc stream outcomes other than completed, and its anomalies. */
async function guardErrors(stack: Stack): Promise<Record<string, number>> {
  if (stack.guard === undefined) return {};
  const text = await stack.guard.metrics();
  const out: Record<string, number> = {};
  for (const match of text.matchAll(/^(guard_extproc_(?:streams|anomalies)_total)\{([^}]*)\} (\S+)$/gm)) {
    const [, name, labels, value] = match;
    if (labels === undefined || value === undefined || Number(value) === 0 || labels.includes('"completed"')) continue;
    out[`${name}{${labels}}`] = Number(value);
  }
  return out;
}

function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(after)
      .map(([key, value]) => [key, value - (before[key] ?? 0)] as const)
      .filter(([, value]) => value !== 0),
  );
}

async function probe(stack: Stack, configuration: StreamingConfiguration, pacing: Pacing): Promise<Probe> {
  const before = await contractChecks(stack);
  const response = await fetch(`${stack.url}${STREAM_PATH}?bench=probe`, {
    method: "POST",
    headers: streamRequestHeaders(pacing),
    body: streamRequestBody(configuration.model),
    signal: AbortSignal.timeout(STREAM_TIMEOUT_MS),
  });
  const text = await response.text();
  const events = text.split("\n\n").filter((block) => block.trim() !== "");
  const mismatches: string[] = [];
  if (response.status !== 200) mismatches.push(`status ${response.status}: ${text.slice(0, 200)}`);
  if (!(response.headers.get("content-type") ?? "").startsWith("text/event-stream"))
    mismatches.push(`content-type ${response.headers.get("content-type")}`);
  if (events.at(-1) !== "data: [DONE]") mismatches.push(`the stream did not end with [DONE]: ${events.at(-1)}`);
  for (const [name, expected] of Object.entries(configuration.expectHeaders)) {
    const actual = response.headers.get(name);
    if (actual !== expected)
      mismatches.push(`${name}: expected ${expected ?? "(absent)"}, got ${actual ?? "(absent)"}`);
  }
  if (configuration.expectCheck !== undefined && before !== undefined) {
    const expected = configuration.expectCheck;
    let counted = 0;
    // The verdict is recorded as the last chunk passes the guard: at the latest just after [DONE].
    for (let attempt = 0; attempt < 20 && counted === 0; attempt++) {
      counted = delta((await contractChecks(stack)) ?? {}, before)[expected] ?? 0;
      if (counted === 0) await sleep(50);
    }
    if (counted !== 1) mismatches.push(`guard_contract_checks_total{result="${expected}"} did not count the probe`);
  }
  const headers = Object.fromEntries([...response.headers].filter(([name]) => name.startsWith("x-")));
  return {
    status: response.status,
    events: events.length,
    responseBytes: Buffer.byteLength(text),
    headers,
    mismatches,
  };
}

/** A forked client process and the messages it sends, awaited one type at a time. */
class Client {
  readonly child: ChildProcess;
  readonly #waiting = new Map<string, (message: ChildMessage) => void>();
  #failure: string | undefined;

  constructor() {
    this.child = fork(CLIENT, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.child.on("message", (message: ChildMessage) => {
      if (message.type === "error") this.#failure = message.message;
      this.#waiting.get(message.type)?.(message);
      this.#waiting.delete(message.type);
    });
    this.child.once("exit", (code) => {
      this.#failure ??= code === 0 ? undefined : `client exited with ${code}`;
      for (const settle of this.#waiting.values()) settle({ type: "error", message: this.#failure ?? "client exited" });
      this.#waiting.clear();
    });
  }

  get failure(): string | undefined {
    return this.#failure;
  }

  send(message: ParentMessage): void {
    this.child.send(message);
  }

  request<T extends ChildMessage["type"]>(
    message: ParentMessage,
    answer: T,
    timeoutMs: number,
  ): Promise<Extract<ChildMessage, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`client: no ${answer} within ${timeoutMs} ms`)), timeoutMs);
      this.#waiting.set(answer, (reply) => {
        clearTimeout(timer);
        if (reply.type === "error") reject(new Error(`client: ${reply.message}`));
        else resolve(reply as Extract<ChildMessage, { type: T }>);
      });
      this.child.send(message);
    });
  }

  stop(): void {
    if (this.child.exitCode === null) this.child.kill("SIGKILL");
  }
}

async function runPoint(
  stack: Stack,
  configuration: StreamingConfiguration,
  concurrency: number,
  settings: StreamingSettings,
  tag: string,
): Promise<PointRun> {
  const { pacing } = settings;
  const streamMs = pacing.firstTokenMs + EVENTS_PER_STREAM * pacing.interTokenMs;
  const processes = Math.max(1, Math.min(settings.clients, concurrency));
  const clients = Array.from({ length: processes }, () => new Client());
  try {
    const plan: Omit<ClientPlan, "users"> = {
      baseUrl: stack.url,
      path: STREAM_PATH,
      headers: streamRequestHeaders(pacing),
      body: streamRequestBody(configuration.model),
      staggerMs: streamMs,
      tag,
      timeoutMs: STREAM_TIMEOUT_MS,
    };
    for (const [index, client] of clients.entries()) {
      const users = Math.floor(concurrency / processes) + (index < concurrency % processes ? 1 : 0);
      client.send({ type: "start", ...plan, users });
    }
    await sleep(streamMs + settings.warmupSec * 1000);
    const server = serverPid(stack);
    const serverPids = server === undefined ? undefined : processTree(server);
    const envoyPid = stack.envoy.process.child.pid;
    const envoyPids = envoyPid === undefined ? [] : [envoyPid];
    const clientPids = clients.map((client) => client.child.pid).filter((pid): pid is number => pid !== undefined);
    const read = () => ({
      server: serverPids === undefined ? null : cpuSeconds(serverPids),
      envoy: cpuSeconds(envoyPids),
      clients: cpuSeconds(clientPids),
    });
    const cpuBefore = read();
    const marksBefore = await Promise.all(clients.map((client) => client.request({ type: "mark" }, "mark", 5_000)));
    const started = performance.now();
    await sleep(settings.durationSec * 1000);
    const cpuAfter = read();
    const marksAfter = await Promise.all(clients.map((client) => client.request({ type: "mark" }, "mark", 5_000)));
    const windowSec = (performance.now() - started) / 1000;
    const done = await Promise.all(
      clients.map((client) => client.request({ type: "stop" }, "done", STREAM_TIMEOUT_MS + 5_000)),
    );
    const records: StreamRecord[] = done.flatMap((reply) => reply.streams);
    const events =
      marksAfter.reduce((sum, mark) => sum + mark.events, 0) - marksBefore.reduce((sum, mark) => sum + mark.events, 0);
    return summarisePoint(concurrency, records, {
      windowSec,
      events,
      serverCpuSec: cpuBefore.server === null || cpuAfter.server === null ? null : cpuAfter.server - cpuBefore.server,
      envoyCpuSec: cpuAfter.envoy - cpuBefore.envoy,
      clientCpuSec: cpuAfter.clients - cpuBefore.clients,
      clientLoopDelayP99Ms: Math.max(...done.map((reply) => reply.loopDelayP99Ms)),
    });
  } finally {
    for (const client of clients) client.stop();
  }
}

export async function runRound(
  configuration: StreamingConfiguration,
  round: number,
  settings: StreamingSettings,
): Promise<RoundResult> {
  let stack: Stack | undefined;
  try {
    const options = await configuration.stackOptions();
    const stackOptions =
      settings.guardNodeArgs === undefined || configuration.server !== "guard"
        ? options
        : { ...options, guardNodeArgs: settings.guardNodeArgs };
    // On a busy shared machine a process of the stack now and then misses its readiness deadline:
    // one more try before the round counts as failed.
    stack = await startStack(stackOptions).catch(async () => {
      await sleep(1_000);
      return startStack(stackOptions);
    });
    const checked = await probe(stack, configuration, settings.pacing);
    const checksBefore = await contractChecks(stack);
    const points: Record<string, PointRun> = {};
    for (const concurrency of settings.concurrencies) {
      await sleep(SETTLE_MS);
      points[String(concurrency)] = await runPoint(
        stack,
        configuration,
        concurrency,
        settings,
        `${configuration.id}-${round}-${concurrency}`,
      );
    }
    const checksAfter = await contractChecks(stack);
    const diagnostics = { ...(await envoyErrors(stack)), ...(await guardErrors(stack)) };
    return {
      configuration: configuration.id,
      round,
      probe: checked,
      points,
      ...(Object.keys(diagnostics).length === 0 ? {} : { diagnostics }),
      ...(checksBefore === undefined || checksAfter === undefined ? {} : { checks: delta(checksAfter, checksBefore) }),
    };
  } catch (error) {
    return { configuration: configuration.id, round, points: {}, error: (error as Error).message.slice(0, 2_000) };
  } finally {
    await stack?.stop();
  }
}
