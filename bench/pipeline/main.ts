// `make bench`: the guard's cost beside Envoy, configurations measured side by side (issue 7).
// Run: npx tsc -p . && node dist/bench/pipeline/main.js [--quick] [--peer-cmd '…' --peer-addr host:port]
// Options are described in docs/bench.md and by --help.
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { envoyBinary, PROJECT_ROOT } from "../../src/devstack/envoy.js";
import {
  chatRequestBody,
  configurations,
  type Peer,
  REQUEST_HEADERS,
  REQUEST_PATH,
  stopSharedServers,
} from "./configurations.js";
import { renderMarkdown, renderText } from "./render.js";
import {
  type BenchReport,
  buildConfigurationReports,
  checkTargets,
  type MachineInfo,
  REPORT_SCHEMA,
} from "./report.js";
import { type BenchSettings, type RoundResult, runRound } from "./runner.js";
import { DEFAULT_NOISE_LIMITS } from "./stats.js";

const USAGE = `usage: node dist/bench/pipeline/main.js [options]
  --quick                  every configuration once at a tiny load (seconds; what make test runs)
  --rates 200,500,1000,2000  open-loop rates, requests/s
  --duration 6             seconds per open-loop rate
  --closed-duration 5      seconds of the closed loop
  --warmup 2               seconds of warm-up per configuration and run
  --connections 10         connections of the open loop
  --closed-connections 10  connections of the closed loop
  --runs 3                 runs per configuration (medians are reported)
  --only a,b,d             configurations to run (a, b, c, d, d_redis, d_uds, e_upstream, e, f, f_d)
  --pin                    Envoy + guard on CPU 0, h2load + demo model on CPU 1 (taskset)
  --peer-cmd CMD --peer-addr HOST:PORT   another ext_proc server, measured as configuration f
  --peer-bodies-cmd CMD    that server asking for d's messages (both bodies buffered), measured as f_d
  --cpu-prof DIR           run the guard under node --cpu-prof (100 µs samples), profiles (.cpuprofile)
                           into DIR; the report then states the drift monitor's µs per response
  --label TEXT             describes the machine/conditions in the report
  --out DIR                where <date>.json and <date>.md go (default bench/results)`;

interface Cli {
  readonly settings: Omit<BenchSettings, "workDir">;
  readonly only: ReadonlySet<string> | undefined;
  readonly peer: Peer | undefined;
  readonly label: string;
  readonly outDir: string;
}

const FULL = {
  rates: [200, 500, 1000, 2000],
  durationSec: 6,
  closedDurationSec: 5,
  warmupSec: 2,
  connections: 10,
  closedConnections: 10,
  runs: 3,
};
const QUICK = {
  rates: [50],
  durationSec: 0.5,
  closedDurationSec: 0.5,
  warmupSec: 0.25,
  connections: 2,
  closedConnections: 2,
  runs: 1,
};

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}

function parseCli(argv: readonly string[]): Cli {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      quick: { type: "boolean", default: false },
      rates: { type: "string" },
      duration: { type: "string" },
      "closed-duration": { type: "string" },
      warmup: { type: "string" },
      connections: { type: "string" },
      "closed-connections": { type: "string" },
      runs: { type: "string" },
      only: { type: "string" },
      pin: { type: "boolean", default: false },
      "peer-cmd": { type: "string" },
      "peer-addr": { type: "string" },
      "peer-bodies-cmd": { type: "string" },
      label: { type: "string" },
      "cpu-prof": { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const base = values.quick ? QUICK : FULL;
  const rates =
    values.rates === undefined ? base.rates : values.rates.split(",").map((rate) => positive("rates", rate, 0));
  if ((values["peer-cmd"] === undefined) !== (values["peer-addr"] === undefined))
    throw new Error("--peer-cmd and --peer-addr go together");
  if (values["peer-bodies-cmd"] !== undefined && values["peer-addr"] === undefined)
    throw new Error("--peer-bodies-cmd needs --peer-cmd and --peer-addr");
  const bodiesCommand = values["peer-bodies-cmd"];
  const peer =
    values["peer-cmd"] !== undefined && values["peer-addr"] !== undefined
      ? {
          command: values["peer-cmd"],
          address: values["peer-addr"],
          ...(bodiesCommand === undefined ? {} : { bodiesCommand }),
        }
      : undefined;
  return {
    settings: {
      rates,
      durationSec: positive("duration", values.duration, base.durationSec),
      closedDurationSec: positive("closed-duration", values["closed-duration"], base.closedDurationSec),
      warmupSec: positive("warmup", values.warmup, base.warmupSec),
      connections: Math.round(positive("connections", values.connections, base.connections)),
      closedConnections: Math.round(
        positive("closed-connections", values["closed-connections"], base.closedConnections),
      ),
      runs: Math.round(positive("runs", values.runs, base.runs)),
      pin: values.pin,
      body: chatRequestBody(),
      ...(values["cpu-prof"] === undefined ? {} : { cpuProfileDir: resolve(values["cpu-prof"]) }),
    },
    only: values.only === undefined ? undefined : new Set(values.only.split(",").map((id) => id.trim())),
    peer,
    label: values.label ?? (values.quick ? "quick smoke run, numbers meaningless" : "full run"),
    outDir: values.out ?? join(PROJECT_ROOT, "bench", "results"),
  };
}

/** The first non-blank line a command prints (envoy --version starts with an empty line). */
function firstLine(command: string, args: readonly string[]): string {
  try {
    const lines = execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).split("\n");
    return lines.map((line) => line.trim()).find((line) => line !== "") ?? "";
  } catch {
    return "unknown";
  }
}

async function machineInfo(loadAverageStart: readonly number[]): Promise<MachineInfo> {
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const envoyVersion = /version: [0-9a-f]+\/([0-9.]+)/.exec(firstLine(envoyBinary(), ["--version"]) || "")?.[1];
  return {
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? "unknown",
    cpus: cpus().length,
    memoryMb: Math.round(totalmem() / 2 ** 20),
    kernel: release(),
    node: process.version,
    envoy: envoyVersion ?? firstLine(envoyBinary(), ["--version"]),
    h2load: firstLine("h2load", ["--version"]),
    loadAverageStart,
    loadAverageEnd: loadavg(),
  };
}

async function main(): Promise<number> {
  let cli: Cli;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const selected = configurations(cli.peer).filter(
    (configuration) => cli.only === undefined || cli.only.has(configuration.id),
  );
  if (selected.length === 0) {
    process.stderr.write(`--only matched no configuration\n${USAGE}\n`);
    return 2;
  }
  const startedAt = new Date();
  const loadAverageStart = loadavg();
  const workDir = await mkdtemp(join(tmpdir(), "inference-guard-bench-"));
  const settings: BenchSettings = { ...cli.settings, workDir };
  const rounds: RoundResult[] = [];
  try {
    // Rounds outermost: configurations are interleaved, so a burst of noise from neighbours on a
    // shared machine lands in one run of several configurations rather than in every run of one.
    for (let round = 1; round <= settings.runs; round++) {
      for (const configuration of selected) {
        const began = Date.now();
        const result = await runRound(configuration, round, settings);
        rounds.push(result);
        const status = result.error ?? (result.probe?.mismatches.join("; ") || "ok");
        process.stderr.write(
          `run ${round}/${settings.runs} ${configuration.id}: ${status} (${((Date.now() - began) / 1000).toFixed(0)} s)\n`,
        );
      }
    }
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  const reports = buildConfigurationReports(selected, rounds, settings.rates);
  const { workDir: _workDir, body, cpuProfileDir: _cpuProfileDir, ...reported } = settings;
  const report: BenchReport = {
    schema: REPORT_SCHEMA,
    label: cli.label,
    command: `node dist/bench/pipeline/main.js ${process.argv.slice(2).join(" ")}`.trim(),
    startedAt: startedAt.toISOString(),
    wallSeconds: (Date.now() - startedAt.getTime()) / 1000,
    machine: await machineInfo(loadAverageStart),
    settings: { ...reported, requestBytes: Buffer.byteLength(body), noiseLimits: DEFAULT_NOISE_LIMITS },
    request: {
      path: REQUEST_PATH,
      headers: REQUEST_HEADERS,
      bodyBytes: Buffer.byteLength(body),
      responseBytes:
        rounds.find((round) => round.probe?.status === 200 && round.configuration !== "e")?.probe?.responseBytes ??
        null,
    },
    configurations: reports,
    targets: checkTargets(reports),
  };
  await mkdir(cli.outDir, { recursive: true });
  const stem = join(cli.outDir, startedAt.toISOString().slice(0, 10));
  await writeFile(`${stem}.json`, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(`${stem}.md`, renderMarkdown(report));
  process.stdout.write(`${renderText(report)}\n\nwrote ${stem}.json and ${stem}.md\n`);
  const broken = rounds.some((round) => round.error !== undefined || (round.probe?.mismatches.length ?? 0) > 0);
  return broken ? 1 : 0;
}

try {
  process.exitCode = await main();
} finally {
  // A live redis-server child would keep this process from ever exiting.
  await stopSharedServers();
}
