// Issue 25's evaluation: the soak's traffic mix for --minutes each, first alone, then beside clients
// cancelling 20% of streams mid-answer and every hostile local client of bench/abusers.ts, then
// the same with Envoy's ext_proc_graceful_grpc_close off (every ext_proc stream ends in a reset).
// Writes bench/results/soak-abuse-<date>.json and .md: healthy traffic beside its baseline, the
// guard's RSS, event-loop stalls over 100 ms, GOAWAYs Envoy saw from the guard, and the refusals.
// Run: make soak-abuse, or node dist/bench/soak-abuse.js [--minutes 10] [--rate 60]
//      node dist/bench/soak-abuse.js --render base.json abuse.json resets.json (reports of soak.js)
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { PROJECT_ROOT } from "../src/devstack/envoy.js";
import { ABUSERS, type AbuserName } from "./abusers.js";
import { runSoak, type SoakOptions, type SoakReport, summarise } from "./soak.js";

interface Run {
  readonly name: string;
  readonly options: Pick<SoakOptions, "cancelShare" | "abusers" | "gracefulClose">;
}

const EVERY_ABUSER = Object.keys(ABUSERS) as AbuserName[];
const RUNS: readonly Run[] = [
  { name: "baseline", options: {} },
  { name: "abuse", options: { cancelShare: 0.2, abusers: EVERY_ABUSER } },
  { name: "abuse, graceful close off", options: { cancelShare: 0.2, abusers: EVERY_ABUSER, gracefulClose: false } },
];

const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);
const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

/** Runs recorded before the soak sampled the load average have none to show. */
function loadAverage(report: SoakReport): string {
  const values = report.samples.map((sample) => sample.loadAverage).filter(Number.isFinite);
  return values.length === 0 ? "-" : median(values).toFixed(1);
}

export function markdown(named: readonly { name: string; report: SoakReport }[]): string {
  const base = named[0]?.report;
  const rows = named.map(({ name, report }) => {
    const p99 = report.latencyMs.p99;
    const versus = base === undefined || report === base ? "" : ` (${(p99 / base.latencyMs.p99).toFixed(2)}×)`;
    const abusers = report.abusers.map((abuser) => `${abuser.name}: ${JSON.stringify(abuser.outcomes)}`).join("; ");
    return [
      name,
      `${(report.durationS / 60).toFixed(1)} min, ${report.requests}`,
      `${(report.successShare * 100).toFixed(3)}%`,
      `${report.latencyMs.p50.toFixed(1)} / ${p99.toFixed(1)}${versus}`,
      `${mib(report.rss.first)} → ${mib(report.rssMaxBytes)}`,
      `${report.eventLoopStalls} (${report.eventLoopLagMaxMs.toFixed(0)} ms)`,
      String(report.envoyGuardConnections.goaway),
      String(report.envoyExtProc.streams_failed ?? 0),
      `${report.streamEnds.halfClosesAnswered} / ${report.streamEnds.halfCloseResets}`,
      JSON.stringify(report.cancelled),
      abusers || "-",
      JSON.stringify(report.refusals),
      loadAverage(report),
    ];
  });
  const header = [
    "run",
    "duration, requests",
    "expected answers",
    "p50 / p99 ms",
    "RSS MiB (start → max)",
    "stalls > 100 ms (longest)",
    "GOAWAY to Envoy",
    "Envoy streams_failed",
    "half-closes answered / reset",
    "cancelled streams",
    "abusers' streams",
    "guard refusals",
    "load average (median)",
  ];
  return [
    `# Soak under abuse, ${base?.startedAt ?? ""}`,
    "",
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...rows.map((row) => `| ${row.join(" | ")} |`),
    "",
  ].join("\n");
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      minutes: { type: "string", default: "10" },
      rate: { type: "string", default: "60" },
      render: { type: "boolean", default: false },
      out: { type: "string" },
    },
  });
  const named: { name: string; report: SoakReport }[] = [];
  if (values.render) {
    for (const [index, file] of positionals.entries()) {
      named.push({ name: RUNS[index]?.name ?? file, report: JSON.parse(await readFile(file, "utf8")) as SoakReport });
    }
  } else {
    for (const run of RUNS) {
      const report = await runSoak({
        durationMs: Number(values.minutes) * 60_000,
        rate: Number(values.rate),
        sampleEveryMs: 2_000,
        log: (line) => console.log(`[${run.name}] ${line}`),
        ...run.options,
      });
      console.log(summarise(report));
      named.push({ name: run.name, report });
    }
  }
  const date = named[0]?.report.startedAt.slice(0, 10) ?? "";
  const out = values.out ?? join(PROJECT_ROOT, "bench", "results", `soak-abuse-${date}`);
  await writeFile(`${out}.json`, `${JSON.stringify(named, null, 2)}\n`);
  await writeFile(`${out}.md`, markdown(named));
  console.log(`${markdown(named)}\nwritten to ${out}.json and .md`);
}

void main();
