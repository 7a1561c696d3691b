// `make bench-streaming`: what the guard adds to streamed (SSE) answers, beside Envoy alone and a Go
// ext_proc peer doing the same message exchange with no work. Closed-loop clients (forked
// processes) time every event: added time to first token, inter-event gaps, CPU per event.
// Run: npx tsc -p . && node dist/bench/streaming/main.js [--quick] [--peer-cmd '…' --peer-addr host:port]
// Options are described in docs/bench.md and by --help.
import { execFileSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { cpus, loadavg, release, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { envoyBinary, PROJECT_ROOT } from "../../src/devstack/envoy.js";
import {
  BOUND_MODEL,
  configurations,
  DEFAULT_SELECTION,
  STREAM_PATH,
  type StreamPeer,
  streamRequestBody,
  streamRequestHeaders,
} from "./configurations.js";
import {
  buildConfigurationReports,
  checkTargets,
  type MachineInfo,
  renderMarkdown,
  renderText,
  STREAMING_REPORT_SCHEMA,
  type StreamingReport,
} from "./report.js";
import { type RoundResult, runRound, type StreamingSettings } from "./runner.js";

const USAGE = `usage: node dist/bench/streaming/main.js [options]
  --quick                    every configuration once at a toy load (seconds; what make test runs)
  --concurrency 50,200       concurrent streams (closed loop), one point each
  --duration 6               measured seconds per point
  --warmup 2                 seconds of warm-up per point (after the users' staggered start)
  --runs 3                   interleaved runs per configuration (medians are reported)
  --clients 2                client processes the streams are spread over
  --first-token-ms 100       the demo model's delay before the first event
  --inter-token-ms 40        and between events
  --only envoy,peer,unbound,shadow,enforce,full   configurations (default all but full)
  --peer-cmd CMD --peer-addr HOST:PORT   the Go reference peer started with -stream (or another server)
  --peer-name NAME           how the report names the peer
  --cpu-prof DIR             run the guard under node --cpu-prof, profiles (.cpuprofile) into DIR
  --label TEXT               describes the machine/conditions in the report
  --out DIR                  where streaming-<date>.json and .md go (default bench/results)`;

interface Cli {
  readonly settings: StreamingSettings;
  readonly only: readonly string[];
  readonly peer: StreamPeer | undefined;
  readonly label: string;
  readonly outDir: string;
}

const FULL = { concurrencies: [50, 200], durationSec: 6, warmupSec: 2, runs: 3, clients: 2, first: 100, inter: 40 };
const QUICK = { concurrencies: [4], durationSec: 1, warmupSec: 0.3, runs: 1, clients: 1, first: 20, inter: 5 };

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
      concurrency: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      runs: { type: "string" },
      clients: { type: "string" },
      "first-token-ms": { type: "string" },
      "inter-token-ms": { type: "string" },
      only: { type: "string" },
      "peer-cmd": { type: "string" },
      "peer-addr": { type: "string" },
      "peer-name": { type: "string" },
      "cpu-prof": { type: "string" },
      label: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const base = values.quick ? QUICK : FULL;
  if ((values["peer-cmd"] === undefined) !== (values["peer-addr"] === undefined))
    throw new Error("--peer-cmd and --peer-addr go together");
  const peer =
    values["peer-cmd"] !== undefined && values["peer-addr"] !== undefined
      ? { command: values["peer-cmd"], address: values["peer-addr"], name: values["peer-name"] ?? "Go reference peer" }
      : undefined;
  const concurrencies =
    values.concurrency === undefined
      ? base.concurrencies
      : values.concurrency.split(",").map((value) => Math.round(positive("concurrency", value, 0)));
  return {
    settings: {
      concurrencies,
      durationSec: positive("duration", values.duration, base.durationSec),
      warmupSec: positive("warmup", values.warmup, base.warmupSec),
      runs: Math.round(positive("runs", values.runs, base.runs)),
      clients: Math.round(positive("clients", values.clients, base.clients)),
      pacing: {
        firstTokenMs: positive("first-token-ms", values["first-token-ms"], base.first),
        interTokenMs: positive("inter-token-ms", values["inter-token-ms"], base.inter),
      },
      ...(values["cpu-prof"] === undefined
        ? {}
        : { guardNodeArgs: ["--cpu-prof", "--cpu-prof-dir", resolve(values["cpu-prof"])] }),
    },
    only: values.only === undefined ? DEFAULT_SELECTION : values.only.split(",").map((id) => id.trim()),
    peer,
    label: values.label ?? (values.quick ? "quick smoke run, numbers meaningless" : "full run"),
    outDir: values.out ?? join(PROJECT_ROOT, "bench", "results"),
  };
}

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
  const envoyLine = firstLine(envoyBinary(), ["--version"]);
  return {
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? "unknown",
    cpus: cpus().length,
    memoryMb: Math.round(totalmem() / 2 ** 20),
    kernel: release(),
    node: process.version,
    envoy: /version: [0-9a-f]+\/([0-9.]+)/.exec(envoyLine)?.[1] ?? envoyLine,
    loadAverageStart,
    loadAverageEnd: loadavg(),
  };
}

function problemsOf(rounds: readonly RoundResult[]): string[] {
  const problems: string[] = [];
  for (const round of rounds) {
    const at = `run ${round.round} ${round.configuration}`;
    if (round.error !== undefined) problems.push(`${at}: ${round.error}`);
    for (const mismatch of round.probe?.mismatches ?? []) problems.push(`${at}: probe: ${mismatch}`);
    for (const [concurrency, point] of Object.entries(round.points)) {
      if (point.failed > 0)
        problems.push(
          `${at} @${concurrency}: ${point.failed} of ${point.streams} streams failed (${Object.entries(point.failures)
            .map(([reason, count]) => `${reason}: ${count}`)
            .join(", ")})`,
        );
      if (point.streams === 0) problems.push(`${at} @${concurrency}: no stream started in the window`);
    }
  }
  return problems;
}

async function main(): Promise<number> {
  let cli: Cli;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const available = configurations(cli.peer);
  const unknown = cli.only.filter(
    (id) => !available.some((configuration) => configuration.id === id) && !(id === "peer" && cli.peer === undefined),
  );
  if (unknown.length > 0) {
    process.stderr.write(`unknown configuration(s): ${unknown.join(", ")}\n${USAGE}\n`);
    return 2;
  }
  const selected = available.filter((configuration) => cli.only.includes(configuration.id));
  const { settings } = cli;
  const startedAt = new Date();
  const loadAverageStart = loadavg();
  const rounds: RoundResult[] = [];
  // Rounds outermost: configurations are interleaved, so a burst of noise from neighbours lands
  // in one run of several configurations rather than in every run of one.
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
  const reports = buildConfigurationReports(selected, rounds, settings);
  const { guardNodeArgs: _guardNodeArgs, ...reported } = settings;
  const report: StreamingReport = {
    schema: STREAMING_REPORT_SCHEMA,
    label: cli.label,
    command: `node dist/bench/streaming/main.js ${process.argv.slice(2).join(" ")}`.trim(),
    startedAt: startedAt.toISOString(),
    wallSeconds: (Date.now() - startedAt.getTime()) / 1000,
    machine: await machineInfo(loadAverageStart),
    settings: reported,
    request: {
      path: STREAM_PATH,
      headers: streamRequestHeaders(settings.pacing),
      bodyBytes: Buffer.byteLength(streamRequestBody(BOUND_MODEL)),
      eventsPerStream: rounds.find((round) => round.probe?.status === 200)?.probe?.events ?? null,
    },
    configurations: reports,
    targets: checkTargets(reports, rounds, settings),
    problems: problemsOf(rounds),
  };
  await mkdir(cli.outDir, { recursive: true });
  const stem = join(cli.outDir, `streaming-${startedAt.toISOString().slice(0, 10)}`);
  await writeFile(`${stem}.json`, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(`${stem}.md`, renderMarkdown(report));
  process.stdout.write(`${renderText(report)}\n\nwrote ${stem}.json and ${stem}.md\n`);
  return report.problems.length > 0 ? 1 : 0;
}

// Exit explicitly: that SIGKILLs every process the stack started (src/devstack/process.ts), also a
// demo model left behind by a stack that failed to start, whose open pipes would keep this alive.
process.exit(await main());
