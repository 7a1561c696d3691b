// The text and Markdown renderings of a benchmark report: the headline, targets and per-point
// tables, and the problems the runs hit.

import type { BenchReport, ConfigurationReport, PointSummary, TargetCheck } from "./report.js";
import type { Probe } from "./runner.js";

const fixed = (value: number | null | undefined, digits: number): string =>
  value === null || value === undefined || !Number.isFinite(value) ? "—" : value.toFixed(digits);
const signed = (value: number | null | undefined, digits: number): string =>
  value === null || value === undefined || !Number.isFinite(value)
    ? "—"
    : `${value >= 0 ? "+" : ""}${value.toFixed(digits)}`;

const HEADLINE_COLUMNS = [
  "config",
  "p50 ms",
  "p99 ms",
  "p99.9 ms",
  "+p50",
  "+p99",
  "+p99.9",
  "vs",
  "max rps",
  "× a",
  "guard µs/req",
  "envoy µs/req",
  "guard RSS MB",
  "errors",
  "noisy",
];

function headlineCells(report: ConfigurationReport): string[] {
  const h = report.headline;
  return [
    report.id,
    fixed(h.p50Ms, 2),
    fixed(h.p99Ms, 2),
    fixed(h.p999Ms, 2),
    signed(h.addedP50Ms, 2),
    signed(h.addedP99Ms, 2),
    signed(h.addedP999Ms, 2),
    report.baseline,
    fixed(h.maxRps, 0),
    fixed(h.throughputRatio, 2),
    fixed(h.guardCpuUsPerRequest, 0),
    fixed(h.envoyCpuUsPerRequest, 0),
    fixed(h.guardRssMb, 0),
    String(h.errors),
    h.noisy ? "yes" : "",
  ];
}

function textTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const line = (cells: readonly string[]): string =>
    cells.map((cell, column) => cell.padStart(widths[column] ?? 0)).join("  ");
  return [line(header), ...rows.map(line)].join("\n");
}

function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => " ---: ").join("|")}|`,
    ...rows.map((row) => `| ${row.join(" | ")} |`),
  ].join("\n");
}

const TARGET_COLUMNS = ["target", "value", "limit", "result", "same exchange, peer"];

function targetCells(target: TargetCheck): string[] {
  const peer = target.peer === null ? "—" : `${target.peer.id}: ${fixed(target.peer.value, 2)}`;
  return [
    target.name,
    fixed(target.value, 2),
    target.limit,
    target.met === null ? "not measured" : target.met ? "met" : "MISSED",
    peer,
  ];
}

const POINT_COLUMNS = [
  "config",
  "load",
  "achieved rps",
  "p50 ms",
  "p99 ms",
  "p99.9 ms",
  "guard µs/req",
  "envoy µs/req",
  "guard RSS MB",
  "errors",
  "p50 spread",
  "flags",
];

function pointCells(report: ConfigurationReport, point: PointSummary): string[] {
  const flags = [
    point.noisy ? "noisy" : "",
    point.saturated ? "saturated" : "",
    point.urisWrapped ? "uris-wrapped" : "",
  ]
    .filter(Boolean)
    .join(",");
  return [
    report.id,
    point.key,
    fixed(point.median.achievedRps, 0),
    fixed(point.median.p50Ms, 2),
    fixed(point.median.p99Ms, 2),
    fixed(point.median.p999Ms, 2),
    fixed(point.median.guardCpuUsPerRequest, 0),
    fixed(point.median.envoyCpuUsPerRequest, 0),
    fixed(point.median.guardRssMb, 0),
    fixed(point.median.errors, 0),
    `${(point.spread.p50Ms * 100).toFixed(0)}%`,
    flags,
  ];
}

const STAGE_COLUMNS = ["config", "stage", "phase", "calls/req", "µs/call", "µs/req"];

/** Per configuration with a guard: its stages' time, then the handlers' and the guard's CPU. */
function stageRows(report: ConfigurationReport): string[][] {
  const summary = report.stages;
  if (summary === null) return [];
  return [
    ...summary.stages.map((stage) => [
      report.id,
      stage.stage,
      stage.phase,
      fixed(stage.callsPerRequest, 2),
      fixed(stage.usPerCall, 1),
      fixed(stage.usPerRequest, 1),
    ]),
    [report.id, "all stages", "", "", "", fixed(sumOf(summary.stages.map((stage) => stage.usPerRequest)), 1)],
    [report.id, "ext_proc handlers", "", "", "", fixed(summary.handlerUsPerRequest, 1)],
    [report.id, "guard CPU (procfs)", "", "", "", fixed(report.headline.guardCpuUsPerRequest, 0)],
    ...(summary.driftUsPerResponse === null
      ? []
      : [[report.id, "drift monitor (profile)", "", "", "", fixed(summary.driftUsPerResponse, 2)]]),
  ];
}

const sumOf = (values: readonly number[]): number => values.reduce((sum, value) => sum + value, 0);

function problems(report: BenchReport): string[] {
  const loadFailures = report.configurations.flatMap((configuration) =>
    configuration.points.flatMap((point) =>
      point.runs.flatMap((run) =>
        run.loadFailures.map((failure) => `${configuration.id} ${point.key}: ${failure.split("\n")[0]}`),
      ),
    ),
  );
  const errorAnswers = report.configurations.flatMap((configuration) =>
    configuration.points.flatMap((point) =>
      point.runs.flatMap((run, index) => {
        const failed = Object.entries(run.statuses).filter(([status]) => !status.startsWith("2"));
        return failed.length === 0
          ? []
          : [
              `${configuration.id} ${point.key} run ${index + 1}: ${failed.map(([status, count]) => `${count}× ${status === "-1" ? "failed stream" : status}`).join(", ")}`,
            ];
      }),
    ),
  );
  return [
    ...loadFailures,
    ...errorAnswers,
    ...report.configurations.flatMap((configuration) =>
      configuration.rounds.flatMap((round) => [
        ...(round.error === undefined
          ? []
          : [`${configuration.id} round ${round.round}: ${round.error.split("\n")[0]}`]),
        ...(round.probe?.mismatches ?? []).map(
          (mismatch: string) => `${configuration.id} round ${round.round} probe: ${mismatch}`,
        ),
      ]),
    ),
  ];
}

function stageSection(report: BenchReport): string[] {
  const rows = report.configurations.flatMap(stageRows);
  if (rows.length === 0) return [];
  return [
    "",
    "## Time in the guard's stages",
    "",
    "From the guard's own histograms at the end of each round (`guard_stage_duration_seconds`, " +
      "`guard_extproc_message_seconds`) ÷ `guard_requests_total`, medians over rounds; the handlers " +
      "include the stages, the guard's CPU adds transport, codec and GC (at the headline rate). The " +
      "drift monitor's comes from a CPU profile of the round (`--cpu-prof`, 100 µs samples): its share " +
      "of the samples, callees included, times the guard's CPU over the round, per response.",
    "",
    markdownTable(STAGE_COLUMNS, rows),
  ];
}

export function renderText(report: BenchReport): string {
  const rate = report.configurations[0]?.headline.rps;
  const issues = problems(report);
  return [
    `inference-guard pipeline benchmark — ${report.label}`,
    `latency columns at ${rate ?? "—"} rps open loop; + columns vs the "vs" configuration; max rps = closed loop (${report.settings.closedConnections} connections); medians of ${report.settings.runs} run(s)`,
    "",
    textTable(HEADLINE_COLUMNS, report.configurations.map(headlineCells)),
    "",
    textTable(TARGET_COLUMNS, report.targets.map(targetCells)),
    ...(issues.length === 0 ? [] : ["", "problems:", ...issues.map((issue) => `  ${issue}`)]),
  ].join("\n");
}

function describeProbe(probe: Probe | undefined): string {
  if (probe === undefined) return "";
  const guardHeaders = Object.entries(probe.headers).filter(([name]) => name.startsWith("x-guard"));
  return guardHeaders.map(([name, value]) => `${name}: ${value}`).join(", ");
}

export function renderMarkdown(report: BenchReport): string {
  const m = report.machine;
  const s = report.settings;
  const issues = problems(report);
  return [
    `# Pipeline benchmark ${report.startedAt.slice(0, 10)} (${report.label})`,
    "",
    `Command: \`${report.command}\` — wall time ${(report.wallSeconds / 60).toFixed(1)} min.`,
    "",
    `Machine: ${m.cpuModel}, ${m.cpus} CPUs, ${(m.memoryMb / 1024).toFixed(1)} GiB, Linux ${m.kernel}; Node ${m.node}, Envoy ${m.envoy}, ${m.h2load}.`,
    `Load average at start ${m.loadAverageStart.map((value) => value.toFixed(2)).join(" ")}, at end ${m.loadAverageEnd.map((value) => value.toFixed(2)).join(" ")}.`,
    "",
    `Request: POST ${report.request.path}, ${report.request.bodyBytes} B JSON body (${report.request.headers.join(", ")}); response ${report.request.responseBytes ?? "—"} B.`,
    `Load: h2load --h1, open loop at ${s.rates.join("/")} rps over ${s.connections} connections for ${s.durationSec} s each, closed loop with ${s.closedConnections} connections (one request in flight each) for ${s.closedDurationSec} s; ${s.warmupSec} s warm-up; medians of ${s.runs} run(s), configurations interleaved per run; pinning ${s.pin ? "on (Envoy + guard on CPU 0, h2load + demo model on CPU 1)" : "off"}.`,
    `A point is flagged noisy when its p50 spread between runs exceeds ${(s.noiseLimits.p50 * 100).toFixed(0)}% or its throughput spread ${(s.noiseLimits.throughput * 100).toFixed(0)}%.`,
    "",
    "## Summary",
    "",
    `Latency at ${report.configurations[0]?.headline.rps ?? "—"} rps (open loop); "+" columns are added latency vs the "vs" configuration; max rps from the closed loop; "× a" = max rps ÷ a's.`,
    "",
    markdownTable(HEADLINE_COLUMNS, report.configurations.map(headlineCells)),
    "",
    "## Targets (issue 7)",
    "",
    markdownTable(TARGET_COLUMNS, report.targets.map(targetCells)),
    "",
    "## Configurations",
    "",
    ...report.configurations.map(
      (configuration) =>
        `- **${configuration.id}** ${configuration.title}: ${configuration.notes}. Probe: ${describeProbe(configuration.rounds[0]?.probe) || "—"}.`,
    ),
    "",
    "## Every point",
    "",
    markdownTable(
      POINT_COLUMNS,
      report.configurations.flatMap((configuration) =>
        configuration.points.map((point) => pointCells(configuration, point)),
      ),
    ),
    ...stageSection(report),
    ...(issues.length === 0 ? [] : ["", "## Problems", "", ...issues.map((issue) => `- ${issue}`)]),
    "",
  ].join("\n");
}
