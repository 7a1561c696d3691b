// The whole chain on loopback: demo model pools (light, heavy) ← Envoy ⇄ guard. Used by `make run`,
// the end-to-end tests and the benchmarks, so all three exercise the same wiring.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { prettyFactory } from "pino-pretty";
import { parse, stringify } from "yaml";
import { configSchema } from "../config/schema.js";
import { PROJECT_ROOT, type RunningEnvoy, startEnvoy } from "./envoy.js";
import type { EnvoyConfigValues, EnvoyVariant } from "./envoy-config.js";
import { freePort } from "./ports.js";
import { accepts, httpOk, type Managed, spawnManaged, waitUntil } from "./process.js";

export const DEFAULT_GUARD_CONFIG = join(PROJECT_ROOT, "config", "default.yaml");
/** The guard's listen addresses when its config names none: `make run` prints them. */
const DEFAULT_LISTEN = configSchema.parse({}).listen;
const NODE = process.execPath;

/**
 * How the guard's Node runs, here as in the Dockerfile and bin/ shebang (a unit test keeps the
 * three equal). Both flags bound V8's garbage, not the guard's live memory (docs/bench.md):
 * - young generation capped at 4 MiB semi-spaces (default 16): ext_proc garbage dies young either
 *   way; in d at 1000 rps RSS 176 → 128 MB with no measurable CPU change.
 * - old generation grown by 1.5× its live size after a full GC instead of V8's adaptive factor
 *   (up to 4×): with the 64 MiB cache full, d at 1000 rps for 60 s peaked at 176 MB instead of
 *   294–303 MB, CPU per request within the run-to-run noise.
 */
export const GUARD_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=4", "--heap-growing-percent=50"];

export interface StackOptions {
  /**
   * Guard config as an object (listen addresses are filled in, drain.graceMs is 0 unless set);
   * default: config/default.yaml.
   */
  readonly guardConfig?: Record<string, unknown>;
  /** false runs Envoy without the ext_proc filter (the benchmark floor). */
  readonly withGuard?: boolean;
  readonly transport?: "tcp" | "uds";
  readonly failureModeAllow?: boolean;
  readonly messageTimeoutMs?: number;
  readonly bufferLimitBytes?: number;
  /** The routes' idle_timeout (envoy/envoy.yaml), 30 s by default. */
  readonly routeIdleTimeoutMs?: number;
  readonly extraVariants?: readonly EnvoyVariant[];
  /** Envoy's OpenTelemetry tracer on, exporting every request's spans to this OTLP/gRPC port. */
  readonly otlpCollectorPort?: number;
  /**
   * Model servers the caller started (and stops) in place of the demo pools, e.g. a real model
   * server (src/devstack/real-servers.ts); Envoy's light and heavy clusters point at them.
   */
  readonly upstreams?: { readonly light: DemoPool; readonly heavy: DemoPool };
  /** Extra demo model CLI flags, per pool. */
  readonly demoArgs?: { readonly light?: readonly string[]; readonly heavy?: readonly string[] };
  readonly envoyConcurrency?: number;
  readonly envoyLogLevel?: string;
  /** Changes the rendered Envoy config (e.g. a setting users get wrong); tests only. */
  readonly editEnvoyConfig?: (yaml: string) => string;
  /**
   * Another Envoy config than envoy/envoy.yaml, placed on the stack's ports and guard address: a
   * deployment's (src/devstack/deploy-configs.ts); tests only.
   */
  readonly renderEnvoyConfig?: (values: EnvoyConfigValues) => string;
  /** Alternative ext_proc server (benchmark peer): command run through a shell, and its address. */
  readonly peer?: { readonly command: string; readonly address: string };
  /** Every process's output on this process's stdout, or only the guard's log. */
  readonly echo?: boolean | "guard";
  /** Extra node flags for the guard process, e.g. --cpu-prof for the benchmark's profile. */
  readonly guardNodeArgs?: readonly string[];
  /**
   * `make run`: Envoy on this port (admin on the next one) and the guard on the listen addresses of
   * its config, so the printed URLs stay the same from run to run. Tests leave it unset (free ports).
   */
  readonly fixedListenPort?: number;
}

export interface DemoPool {
  /** Absent for a server the stack does not run (`make run UPSTREAM=http://host:port`). */
  readonly process?: Managed;
  readonly url: string;
}

export interface Stack {
  readonly url: string;
  readonly envoy: RunningEnvoy;
  readonly light: DemoPool;
  readonly heavy: DemoPool;
  readonly workDir: string;
  /** Absent when the stack runs without the guard. */
  readonly guard: GuardHandle | undefined;
  /** The alternative ext_proc server, when one was given. */
  readonly peer: Managed | undefined;
  stop(): Promise<void>;
}

export interface GuardHandle {
  readonly address: string;
  readonly adminUrl: string;
  readonly configFile: string;
  process(): Managed;
  /** Starts the guard again (after stop or kill) with the same config and addresses. */
  restart(): Promise<void>;
  metrics(): Promise<string>;
}

async function startDemo(
  pool: "light" | "heavy",
  extra: readonly string[],
  echo: boolean,
): Promise<DemoPool & { readonly process: Managed }> {
  const port = await freePort();
  const proc = spawnManaged(
    `demo-${pool}`,
    NODE,
    [
      join(PROJECT_ROOT, "dist", "src", "demo", "main.js"),
      "--port",
      String(port),
      "--host",
      "127.0.0.1",
      "--pool",
      pool,
      ...extra,
    ],
    echo ? { onOutput: (chunk) => process.stdout.write(`[demo-${pool}] ${chunk}`) } : {},
  );
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(`demo model (${pool})`, () => httpOk(`${url}/__demo/stats`), 15_000, proc);
  return { process: proc, url };
}

async function startDemoPools(
  options: StackOptions,
  echo: boolean,
): Promise<{ light: DemoPool & { readonly process: Managed }; heavy: DemoPool & { readonly process: Managed } }> {
  const [light, heavy] = await Promise.all([
    startDemo("light", options.demoArgs?.light ?? [], echo),
    startDemo("heavy", options.demoArgs?.heavy ?? [], echo),
  ]);
  return { light, heavy };
}

/** A pool URL's host as Envoy takes it: an IPv6 address without its brackets. */
function hostOf(url: string): string {
  return new URL(url).hostname.replace(/^\[(.*)\]$/, "$1");
}

function portOf(url: string): number {
  const parsed = new URL(url);
  return parsed.port === "" ? 80 : Number(parsed.port);
}

/** The guard's log as the stack echoes it: pretty lines on a terminal, its JSON lines otherwise. */
function guardLogPrinter(): (chunk: string) => void {
  if (process.stdout.isTTY !== true) return (chunk) => process.stdout.write(`[guard] ${chunk}`);
  const pretty = prettyFactory({ colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname,service" });
  let partial = "";
  return (chunk) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) process.stdout.write(`[guard] ${line.startsWith("{") ? pretty(line) : `${line}\n`}`);
  };
}

export async function loadGuardConfigObject(file = DEFAULT_GUARD_CONFIG): Promise<Record<string, unknown>> {
  return (parse(await readFile(file, "utf8")) ?? {}) as Record<string, unknown>;
}

async function startGuardProcess(
  configFile: string,
  adminUrl: string,
  echo: boolean,
  nodeArgs: readonly string[],
): Promise<Managed> {
  const proc = spawnManaged(
    "guard",
    NODE,
    [...nodeArgs, join(PROJECT_ROOT, "bin", "inference-guard.js"), "serve", "--config", configFile],
    // Relative paths in the config (contracts.protoPaths) are relative to the working directory.
    { cwd: PROJECT_ROOT, ...(echo ? { onOutput: guardLogPrinter() } : {}) },
  );
  await waitUntil("guard", () => httpOk(`${adminUrl}/readyz`), 20_000, proc);
  return proc;
}

function comparesInShadow(config: Record<string, unknown>): boolean {
  const routes = Array.isArray(config.routes) ? (config.routes as unknown[]) : [];
  return routes.some((route) => {
    const canary = (route as { canary?: { shadow?: unknown } } | null)?.canary;
    return canary?.shadow !== undefined;
  });
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const echo = options.echo === true;
  const workDir = await mkdtemp(join(tmpdir(), "inference-guard-"));
  const started: Managed[] = [];
  try {
    let pools = options.upstreams;
    if (pools === undefined) {
      const demo = await startDemoPools(options, echo);
      started.push(demo.light.process, demo.heavy.process);
      pools = demo;
    }
    const { light, heavy } = pools;

    const withGuard = options.withGuard ?? true;
    const envoyAdminPort = options.fixedListenPort === undefined ? await freePort() : options.fixedListenPort + 1;
    const listenPort = options.fixedListenPort ?? (await freePort());
    let guard: GuardHandle | undefined;
    let peer: Managed | undefined;
    let guardAddress = "127.0.0.1:9";
    if (options.peer !== undefined) {
      guardAddress = options.peer.address;
      // exec: the shell becomes the peer, so stopping it stops the peer instead of orphaning it
      // (an orphan holds the output pipes open and the benchmark never exits).
      peer = spawnManaged(
        "peer",
        "/bin/sh",
        ["-c", `exec ${options.peer.command}`],
        echo ? { onOutput: (chunk: string) => process.stdout.write(`[peer] ${chunk}`) } : {},
      );
      started.push(peer);
      // A peer need not speak gRPC health: Envoy would route to it before it listens.
      await waitUntil(`peer at ${guardAddress}`, () => accepts(guardAddress), 20_000, peer);
    } else if (withGuard) {
      const config = { ...(options.guardConfig ?? (await loadGuardConfigObject())) };
      // The guard reads the requests this Envoy sends on without it (guard_envoy_unguarded_total).
      config.envoy = { adminUrl: `http://127.0.0.1:${envoyAdminPort}`, ...(config.envoy as object | undefined) };
      // A rollout's shadow comparison sends its side requests through this Envoy's listener.
      if (comparesInShadow(config))
        config.canary = { envoyUrl: `http://127.0.0.1:${listenPort}`, ...(config.canary as object | undefined) };
      const listen = { ...(config.listen as Record<string, unknown> | undefined) };
      const fixed = options.fixedListenPort !== undefined;
      const adminAddress = fixed ? String(listen.admin ?? DEFAULT_LISTEN.admin) : `127.0.0.1:${await freePort()}`;
      if (fixed) guardAddress = String(listen.grpc ?? DEFAULT_LISTEN.grpc);
      else
        guardAddress =
          options.transport === "uds" ? `unix:${join(workDir, "guard.sock")}` : `127.0.0.1:${await freePort()}`;
      config.listen = { ...listen, grpc: guardAddress, admin: adminAddress };
      // The stack stops Envoy before the guard: nothing is left to send during a drain grace, which
      // would only add its length to every teardown. A config that sets drain.graceMs keeps it.
      config.drain = { graceMs: 0, ...(config.drain as Record<string, unknown> | undefined) };
      const configFile = join(workDir, "guard.yaml");
      await writeFile(configFile, stringify(config));
      const adminUrl = `http://${adminAddress}`;
      const nodeArgs = [...GUARD_NODE_FLAGS, ...(options.guardNodeArgs ?? [])];
      const echoGuard = echo || options.echo === "guard";
      let proc = await startGuardProcess(configFile, adminUrl, echoGuard, nodeArgs);
      started.push(proc);
      guard = {
        address: guardAddress,
        adminUrl,
        configFile,
        process: () => proc,
        async restart() {
          proc = await startGuardProcess(configFile, adminUrl, echoGuard, nodeArgs);
          started.push(proc);
        },
        async metrics() {
          const response = await fetch(`${adminUrl}/metrics`);
          return response.text();
        },
      };
    }

    const variants = new Set<EnvoyVariant>(options.extraVariants ?? []);
    if (withGuard || options.peer !== undefined) variants.add("ext_proc");
    if (options.otlpCollectorPort !== undefined) variants.add("tracing");
    const envoy = await startEnvoy(
      {
        listenPort,
        adminPort: envoyAdminPort,
        lightHost: hostOf(light.url),
        lightPort: portOf(light.url),
        heavyHost: hostOf(heavy.url),
        heavyPort: portOf(heavy.url),
        guardAddress,
        failureModeAllow: options.failureModeAllow ?? false,
        messageTimeoutMs: options.messageTimeoutMs ?? 1_000,
        bufferLimitBytes: options.bufferLimitBytes ?? 8 * 1024 * 1024,
        routeIdleTimeoutMs: options.routeIdleTimeoutMs ?? 30_000,
        ...(options.otlpCollectorPort === undefined
          ? {}
          : {
              tracing: { collectorHost: "127.0.0.1", collectorPort: options.otlpCollectorPort, samplingPercent: 100 },
            }),
        variants,
      },
      workDir,
      {
        ...(options.envoyConcurrency === undefined ? {} : { concurrency: options.envoyConcurrency }),
        ...(options.envoyLogLevel === undefined ? {} : { logLevel: options.envoyLogLevel }),
        ...(options.editEnvoyConfig === undefined ? {} : { editConfig: options.editEnvoyConfig }),
        ...(options.renderEnvoyConfig === undefined ? {} : { render: options.renderEnvoyConfig }),
        ...(echo ? { onOutput: (chunk: string) => process.stdout.write(`[envoy] ${chunk}`) } : {}),
      },
    );
    started.push(envoy.process);
    return {
      url: envoy.url,
      envoy,
      light,
      heavy,
      workDir,
      guard,
      peer,
      async stop() {
        // Envoy first so nothing new reaches the guard, then the rest.
        await envoy.process.stop();
        await Promise.all(started.map((proc) => proc.stop()));
        await rm(workDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await Promise.all(started.map((proc) => proc.stop("SIGKILL")));
    await rm(workDir, { recursive: true, force: true });
    throw error;
  }
}
