// Child processes of the dev stack (guard, demo models, Envoy, Redis): started with captured
// output, awaited until ready, stopped with a signal, and never left behind when this process exits.
import { type ChildProcess, spawn } from "node:child_process";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { parseAddress } from "../util/address.js";

export interface Managed {
  readonly name: string;
  readonly child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  exited(): boolean;
  /** Sends the signal and waits for exit; SIGKILL after graceMs. Resolves with the exit code. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | null>;
  readonly exit: Promise<number | null>;
}

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

export interface SpawnOptions {
  /** Defaults to this process's environment; test-runner preloads are removed either way (childEnv). */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Called with each chunk of output, e.g. to echo it while `make run` is in the foreground. */
  readonly onOutput?: (chunk: string) => void;
}

/**
 * The environment a child of the stack gets: the given one without the preloads a test runner puts
 * in NODE_OPTIONS for its own processes (tap's `--import=…@tapjs/processinfo…`), so a guard started
 * from a test runs as it runs in production, without the runner's hooks inside it. Other
 * NODE_OPTIONS stay.
 */
export function childEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const options = env.NODE_OPTIONS;
  if (options === undefined || !options.includes("@tapjs/")) return env;
  const kept = (options.match(/"[^"]*"|\S+/g) ?? []).filter((option) => !option.includes("@tapjs/"));
  const { NODE_OPTIONS: _dropped, ...rest } = env;
  return kept.length === 0 ? rest : { ...rest, NODE_OPTIONS: kept.join(" ") };
}

export function spawnManaged(
  name: string,
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): Managed {
  const child = spawn(command, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: childEnv(options.env ?? process.env),
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
  live.add(child);
  let output = "";
  const collect = (chunk: Buffer): void => {
    const text = chunk.toString("utf8");
    // Bounded: a chatty process must not grow the test runner's memory without limit.
    output = (output + text).slice(-1_000_000);
    options.onOutput?.(text);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  let exitedFlag = false;
  const exit = new Promise<number | null>((resolve) => {
    child.once("exit", (code, signal) => {
      exitedFlag = true;
      live.delete(child);
      resolve(code ?? (signal === null ? null : 128));
    });
    child.once("error", (error) => {
      output += `\nspawn error: ${error.message}`;
      exitedFlag = true;
      live.delete(child);
      resolve(null);
    });
  });
  return {
    name,
    child,
    output: () => output,
    exited: () => exitedFlag,
    exit,
    async stop(signal = "SIGTERM", graceMs = 5_000) {
      if (exitedFlag) return exit;
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      const code = await exit;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Polls until check() resolves true; fails with the process output when it exits or times out. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  proc?: Managed,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc?.exited() === true) throw new Error(`${what}: ${proc.name} exited early\n${proc.output().slice(-4000)}`);
    try {
      if (await check()) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline)
      throw new Error(`${what}: not ready after ${timeoutMs} ms\n${proc?.output().slice(-4000) ?? ""}`);
    await sleep(50);
  }
}

export async function httpOk(url: string): Promise<boolean> {
  const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
  await response.arrayBuffer();
  return response.ok;
}

/** Whether something accepts connections at "host:port" or "unix:/path". */
export function accepts(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(parseAddress(address));
    socket.setTimeout(1_000);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(false));
  });
}
