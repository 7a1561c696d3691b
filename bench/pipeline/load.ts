// Load from h2load (Debian's nghttp2-client), HTTP/1.1 like most clients of an inference gateway.
//
// One h2load process per connection, each with its own list of URIs: h2load walks the same URI list
// from the top in every client of one process, so clients of a single process would send the same
// URI at the same moment, and the cache would coalesce or answer what is meant to be a miss.
// Distinct query strings make every request a distinct cache key (the demo model ignores them).
import { spawn } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type LoggedRequest, parseH2loadLog } from "./stats.js";

export interface LoadTarget {
  /** Envoy's listener, e.g. http://127.0.0.1:10000. */
  readonly baseUrl: string;
  readonly path: string;
  readonly bodyFile: string;
  /** "name: value" request headers. */
  readonly headers: readonly string[];
  /** false: every request has the same URI (the cache-hit configuration). */
  readonly uniqueUris: boolean;
}

/** Open loop: a fixed request rate whatever the latency. Closed loop: each connection sends as fast as answers come. */
export type LoadShape = { readonly kind: "open"; readonly rps: number } | { readonly kind: "closed" };

export interface LoadOptions {
  readonly connections: number;
  readonly durationSec: number;
  /** Folder for URI lists and logs. */
  readonly workDir: string;
  /** Makes this load's URIs distinct from every other load's on the same guard. */
  readonly tag: string;
  /** taskset CPU list for the load generator, when pinning. */
  readonly cpus?: string;
  /** URIs per connection for closed loops, whose rate is unknown in advance. */
  readonly closedUrisPerConnection?: number;
}

export interface LoadResult {
  readonly rows: readonly LoggedRequest[];
  readonly durationSec: number;
  /** Some connection ran out of distinct URIs and started over (repeats may be cache hits). */
  readonly urisWrapped: boolean;
  /** h2load processes that exited with a failure, with the end of their output. */
  readonly failures: readonly string[];
}

const DEFAULT_CLOSED_URIS_PER_CONNECTION = 20_000;

function urisPerConnection(shape: LoadShape, options: LoadOptions): number {
  if (shape.kind === "closed") return options.closedUrisPerConnection ?? DEFAULT_CLOSED_URIS_PER_CONNECTION;
  // h2load catches up on missed ticks, so allow for a burst beyond the nominal count.
  return Math.ceil((shape.rps / options.connections) * options.durationSec * 1.25) + 50;
}

async function writeUriList(file: string, target: LoadTarget, count: number, prefix: string): Promise<void> {
  const base = `${target.baseUrl}${target.path}`;
  const lines: string[] = [];
  if (!target.uniqueUris) lines.push(base);
  else for (let i = 0; i < count; i++) lines.push(`${base}?bench=${prefix}.${i}`);
  await writeFile(file, `${lines.join("\n")}\n`);
}

function runH2load(
  args: readonly string[],
  cpus: string | undefined,
  timeoutMs: number,
): Promise<{ code: number | null; output: string }> {
  const [command, argv] = cpus === undefined ? ["h2load", args] : ["taskset", ["-c", cpus, "h2load", ...args]];
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const collect = (chunk: Buffer): void => {
      output = (output + chunk.toString("utf8")).slice(-8_000);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run h2load (install Debian's nghttp2-client: make system-deps): ${error.message}`));
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

export async function runLoad(target: LoadTarget, shape: LoadShape, options: LoadOptions): Promise<LoadResult> {
  const perConnection = urisPerConnection(shape, options);
  const runs = Array.from({ length: options.connections }, async (_, index) => {
    // Each h2load paces its connection from its own start: started together, all connections would
    // send at the same instants, in bursts of `connections` requests. Staggered starts interleave
    // them evenly at the total rate.
    if (shape.kind === "open") await sleep((index * 1000) / shape.rps);
    const name = `${options.tag}.${index}`;
    const uriFile = join(options.workDir, `${name}.uris`);
    const logFile = join(options.workDir, `${name}.log`);
    await writeUriList(uriFile, target, perConnection, name);
    const args = [
      "--h1",
      "-c",
      "1",
      "-m",
      "1",
      "-t",
      "1",
      "-D",
      `${Math.round(options.durationSec * 1000)}ms`,
      "-d",
      target.bodyFile,
      ...target.headers.flatMap((header) => ["-H", header]),
      "-i",
      uriFile,
      "--log-file",
      logFile,
      ...(shape.kind === "open" ? ["--rps", String(shape.rps / options.connections)] : []),
    ];
    const { code, output } = await runH2load(args, options.cpus, options.durationSec * 1000 + 30_000);
    const rows = parseH2loadLog(await readFile(logFile, "utf8").catch(() => ""));
    // A full run writes hundreds of MB of URI lists and logs; only the parsed rows are kept.
    await Promise.all([rm(uriFile, { force: true }), rm(logFile, { force: true })]);
    return {
      rows,
      failed: code === 0 ? undefined : `h2load exited ${code}: ${output.slice(-1_000)}`,
      wrapped: target.uniqueUris && rows.length > perConnection,
    };
  });
  const results = await Promise.all(runs);
  return {
    rows: results.flatMap((result) => result.rows),
    durationSec: options.durationSec,
    urisWrapped: results.some((result) => result.wrapped),
    failures: results.flatMap((result) => (result.failed === undefined ? [] : [result.failed])),
  };
}
