// The streaming benchmark's report: medians over runs per configuration and concurrency, the added
// time against Envoy alone, the issue's targets judged, and the Markdown and text renderings.
import type { StreamingConfiguration } from "./configurations.js";
import type { RoundResult, StreamingSettings } from "./runner.js";
import { type MedianField, medians, type PointMedians, pairedAdded, spread } from "./stats.js";

export const STREAMING_REPORT_SCHEMA = "inference-guard-bench-streaming/1";
export const BASELINE = "envoy";

/** Fields whose difference to Envoy alone is reported (paired by run, then the median). */
const ADDED_FIELDS = [
  "ttftP50Ms",
  "ttftP99Ms",
  "ttfcP50Ms",
  "ttfcP99Ms",
  "lastP50Ms",
  "lastP99Ms",
  "gapP50Ms",
  "gapP99Ms",
] as const satisfies readonly MedianField[];
type AddedField = (typeof ADDED_FIELDS)[number];

export interface ConfigurationPoint {
  readonly concurrency: number;
  readonly median: PointMedians;
  /** Minus Envoy alone's, null for Envoy alone itself. */
  readonly added: Record<AddedField, number | null> | null;
  /**
   * Guard CPU per event minus the unbound configuration's (same run), median: what passing the
   * events through the guard costs beyond the exchange's headers and request body. Guard rows only.
   */
  readonly guardCpuUsPerEventBeyondUnbound: number | null;
}

export interface ConfigurationReport {
  readonly id: string;
  readonly title: string;
  readonly notes: string;
  readonly points: ConfigurationPoint[];
  readonly rounds: RoundResult[];
}

export interface Target {
  readonly configuration: string;
  readonly concurrency: number;
  readonly what: string;
  readonly limit: string;
  readonly measured: number | null;
  /** null when not measured. */
  readonly met: boolean | null;
}

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cpus: number;
  readonly memoryMb: number;
  readonly kernel: string;
  readonly node: string;
  readonly envoy: string;
  readonly loadAverageStart: readonly number[];
  readonly loadAverageEnd: readonly number[];
}

export interface StreamingReport {
  readonly schema: typeof STREAMING_REPORT_SCHEMA;
  readonly label: string;
  readonly command: string;
  readonly startedAt: string;
  readonly wallSeconds: number;
  readonly machine: MachineInfo;
  readonly settings: Omit<StreamingSettings, "guardNodeArgs">;
  readonly request: {
    readonly path: string;
    readonly headers: Readonly<Record<string, string>>;
    readonly bodyBytes: number;
    readonly eventsPerStream: number | null;
  };
  readonly configurations: ConfigurationReport[];
  readonly targets: Target[];
  readonly problems: string[];
}

function roundsOf(rounds: readonly RoundResult[], id: string, runs: number): (RoundResult | undefined)[] {
  return Array.from({ length: runs }, (_, index) =>
    rounds.find((round) => round.configuration === id && round.round === index + 1),
  );
}

export function buildConfigurationReports(
  selected: readonly StreamingConfiguration[],
  rounds: readonly RoundResult[],
  settings: StreamingSettings,
): ConfigurationReport[] {
  const baseline = roundsOf(rounds, BASELINE, settings.runs);
  const unbound = roundsOf(rounds, "unbound", settings.runs);
  return selected.map((configuration) => {
    const own = roundsOf(rounds, configuration.id, settings.runs);
    const points = settings.concurrencies.map((concurrency): ConfigurationPoint => {
      const key = String(concurrency);
      const runs = own.map((round) => round?.points[key]);
      const baseRuns = baseline.map((round) => round?.points[key]);
      const added =
        configuration.id === BASELINE
          ? null
          : (Object.fromEntries(ADDED_FIELDS.map((field) => [field, pairedAdded(runs, baseRuns, field)])) as Record<
              AddedField,
              number | null
            >);
      const streamedThroughGuard = configuration.server === "guard" && configuration.id !== "unbound";
      return {
        concurrency,
        median: medians(runs.filter((run) => run !== undefined)),
        added,
        guardCpuUsPerEventBeyondUnbound: streamedThroughGuard
          ? pairedAdded(
              runs,
              unbound.map((round) => round?.points[key]),
              "serverCpuUsPerEvent",
            )
          : null,
      };
    });
    return {
      id: configuration.id,
      title: configuration.title,
      notes: configuration.notes,
      points,
      rounds: own.filter((round): round is RoundResult => round !== undefined),
    };
  });
}

/** Gap percentiles count as unchanged within this much of Envoy alone's, or its run-to-run spread if larger. */
const GAP_TOLERANCE_MS = 0.5;
const TTFT_P50_MS = 1;
const TTFT_P99_MS = 3;
const CPU_PER_EVENT_US = 20;

export function checkTargets(
  reports: readonly ConfigurationReport[],
  rounds: readonly RoundResult[],
  settings: StreamingSettings,
): Target[] {
  const targets: Target[] = [];
  const baseline = roundsOf(rounds, BASELINE, settings.runs);
  const judge = (value: number | null, limit: number): boolean | null =>
    value === null || !Number.isFinite(value) ? null : value <= limit;
  for (const report of reports) {
    if (!["unbound", "shadow", "enforce"].includes(report.id)) continue;
    for (const point of report.points) {
      const key = String(point.concurrency);
      const base = baseline.map((round) => round?.points[key]);
      const added = point.added;
      const at = { configuration: report.id, concurrency: point.concurrency };
      targets.push({
        ...at,
        what: "added TTFT p50",
        limit: `≤ ${TTFT_P50_MS} ms`,
        measured: added?.ttftP50Ms ?? null,
        met: judge(added?.ttftP50Ms ?? null, TTFT_P50_MS),
      });
      targets.push({
        ...at,
        what: "added TTFT p99",
        limit: `≤ ${TTFT_P99_MS} ms`,
        measured: added?.ttftP99Ms ?? null,
        met: judge(added?.ttftP99Ms ?? null, TTFT_P99_MS),
      });
      for (const field of ["gapP50Ms", "gapP99Ms"] as const) {
        const tolerance = Math.max(GAP_TOLERANCE_MS, spread(base, field));
        const value = added?.[field] ?? null;
        targets.push({
          ...at,
          what: `inter-event gap ${field === "gapP50Ms" ? "p50" : "p99"} vs Envoy alone`,
          limit: `within ±${tolerance.toFixed(2)} ms`,
          measured: value,
          met: value === null || !Number.isFinite(value) ? null : Math.abs(value) <= tolerance,
        });
      }
      if (report.id !== "unbound") {
        const cpu = point.median.serverCpuUsPerEvent;
        targets.push({
          ...at,
          what: "guard CPU per event",
          limit: `≤ ${CPU_PER_EVENT_US} µs`,
          measured: cpu,
          met: judge(cpu, CPU_PER_EVENT_US),
        });
      }
    }
  }
  return targets;
}

function fmt(value: number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return value.toFixed(digits);
}

function signed(value: number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return `${value >= 0 ? "+" : ""}${value.toFixed(digits)}`;
}

function ratio(value: number | null | undefined, base: number | null | undefined): string {
  if (value === null || value === undefined || base === null || base === undefined || !(base > 0)) return "–";
  return `${(value / base).toFixed(2)}×`;
}

function table(report: StreamingReport, concurrency: number): string[] {
  const peer = report.configurations
    .find((configuration) => configuration.id === "peer")
    ?.points.find((point) => point.concurrency === concurrency)?.median;
  const lines = [
    `### ${concurrency} concurrent streams`,
    "",
    "| config | TTFT p50 ms | added p50 | added p99 | first content added p50 | last event added p50 | gap p50 ms (added) | gap p99 ms (added) | gaps < 1 ms | events/s | server CPU µs/event | ÷ Go peer | beyond unbound | Envoy CPU µs/event | failed |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const configuration of report.configurations) {
    const point = configuration.points.find((candidate) => candidate.concurrency === concurrency);
    if (point === undefined) continue;
    const m = point.median;
    const a = point.added;
    const gap = (value: number | null, added: number | null | undefined): string =>
      a === null ? fmt(value) : `${fmt(value)} (${signed(added)})`;
    lines.push(
      `| ${configuration.id} | ${fmt(m.ttftP50Ms)} | ${signed(a?.ttftP50Ms)} | ${signed(a?.ttftP99Ms)} | ${signed(a?.ttfcP50Ms)} | ${signed(a?.lastP50Ms)} | ${gap(m.gapP50Ms, a?.gapP50Ms)} | ${gap(m.gapP99Ms, a?.gapP99Ms)} | ${fmt((m.gapsUnder1Ms ?? 0) * 100, 0)}% | ${fmt(m.eventsPerSecond, 0)} | ${fmt(m.serverCpuUsPerEvent, 1)} | ${configuration.id === "peer" || m.serverCpuUsPerEvent === null ? "–" : ratio(m.serverCpuUsPerEvent, peer?.serverCpuUsPerEvent)} | ${fmt(point.guardCpuUsPerEventBeyondUnbound, 1)} | ${fmt(m.envoyCpuUsPerEvent, 1)} | ${fmt(m.failed, 0)} |`,
    );
  }
  return lines;
}

export function renderMarkdown(report: StreamingReport): string {
  const { machine, settings } = report;
  const lines = [
    `# Streaming benchmark, ${report.startedAt.slice(0, 10)}`,
    "",
    `${report.label}. \`${report.command}\`, ${Math.round(report.wallSeconds)} s.`,
    "",
    `Machine: ${machine.cpuModel}, ${machine.cpus} CPUs, ${machine.memoryMb} MB, Linux ${machine.kernel}, Node ${machine.node}, Envoy ${machine.envoy}; load average ${machine.loadAverageStart.map((value) => value.toFixed(2)).join(" ")} at the start, ${machine.loadAverageEnd.map((value) => value.toFixed(2)).join(" ")} at the end.`,
    "",
    `Load: closed loop, ${settings.concurrencies.join(" and ")} concurrent streams (users spread over ${settings.clients} client processes), ${settings.warmupSec} s warm-up then ${settings.durationSec} s measured per point, ${settings.runs} interleaved runs; medians of the runs. The demo model streams \`POST ${report.request.path}\` (${report.request.bodyBytes}-byte request, ${fmt(report.request.eventsPerStream, 0)} events per stream) with the first event after ${settings.pacing.firstTokenMs} ms and one event every ${settings.pacing.interTokenMs} ms.`,
    "",
    "Added = the configuration's percentile minus Envoy alone's, run by run, median of the differences. TTFT = first event (the role chunk); first content = first event with text; last event = `data: [DONE]`. Gaps are between consecutive events of a stream; events written together (the last one and [DONE], or events an enforced check held and released at once) arrive < 1 ms apart. CPU per event = CPU time (user + system, /proc) in the measured window ÷ SSE events the clients read in it; it includes each stream's share of its headers and request body exchange, so \"beyond unbound\" (the guard's CPU per event minus the unbound row's, same run) is what carrying the events through the guard costs.",
    "",
    "## Summary",
    "",
  ];
  for (const concurrency of settings.concurrencies) lines.push(...table(report, concurrency), "");
  lines.push(
    "## Targets",
    "",
    "| config | streams | target | limit | measured | met |",
    "| --- | ---: | --- | --- | ---: | --- |",
  );
  for (const target of report.targets) {
    const unit = target.what.includes("CPU") ? " µs" : " ms";
    const measured =
      target.measured === null
        ? "–"
        : `${target.what.includes("CPU") ? fmt(target.measured, 1) : signed(target.measured)}${unit}`;
    lines.push(
      `| ${target.configuration} | ${target.concurrency} | ${target.what} | ${target.limit} | ${measured} | ${target.met === null ? "not measured" : target.met ? "yes" : "**no**"} |`,
    );
  }
  lines.push("", "## Configurations", "");
  for (const configuration of report.configurations) {
    const checks = configuration.rounds
      .map((round) => (round.checks === undefined ? undefined : JSON.stringify(round.checks)))
      .filter((text) => text !== undefined);
    lines.push(
      `- **${configuration.id}** (${configuration.title}): ${configuration.notes}.${checks.length === 0 ? "" : ` Contract checks per round: ${checks.join(", ")}.`}`,
    );
  }
  lines.push(
    "",
    "## Load generator",
    "",
    "The clients' own CPU per event and how late their event loop ran a 5 ms timer (p99 of the lateness): a client that fell behind would add its own delay to every timing.",
    "",
  );
  for (const configuration of report.configurations) {
    const cells = configuration.points.map(
      (point) =>
        `${point.concurrency}: ${fmt(point.median.clientCpuUsPerEvent, 1)} µs CPU/event, event loop lag p99 ${fmt(point.median.clientLoopDelayP99Ms)} ms`,
    );
    lines.push(`- ${configuration.id}: ${cells.join("; ")}`);
  }
  if (report.problems.length > 0)
    lines.push("", "## Problems", "", ...report.problems.map((problem) => `- ${problem}`));
  const diagnostics = report.configurations.flatMap((configuration) =>
    configuration.rounds
      .filter((round) => round.diagnostics !== undefined)
      .map((round) => `- run ${round.round} ${configuration.id}: ${JSON.stringify(round.diagnostics)}`),
  );
  if (diagnostics.length > 0)
    lines.push(
      "",
      "## Error counters (Envoy's ext_proc filter and guard cluster, the guard's streams)",
      "",
      ...diagnostics,
    );
  return `${lines.join("\n")}\n`;
}

export function renderText(report: StreamingReport): string {
  const lines: string[] = [];
  for (const concurrency of report.settings.concurrencies) {
    lines.push(`${concurrency} streams`);
    lines.push(
      `${"config".padEnd(9)}${"TTFT p50".padStart(10)}${"+p50".padStart(8)}${"+p99".padStart(8)}${"+1st text".padStart(10)}${"+last".padStart(8)}${"gap p50".padStart(9)}${"gap p99".padStart(9)}${"ev/s".padStart(7)}${"srv µs/ev".padStart(11)}${"envoy µs/ev".padStart(13)}${"failed".padStart(8)}`,
    );
    for (const configuration of report.configurations) {
      const point = configuration.points.find((candidate) => candidate.concurrency === concurrency);
      if (point === undefined) continue;
      const m = point.median;
      const a = point.added;
      lines.push(
        `${configuration.id.padEnd(9)}${fmt(m.ttftP50Ms).padStart(10)}${signed(a?.ttftP50Ms).padStart(8)}${signed(a?.ttftP99Ms).padStart(8)}${signed(a?.ttfcP50Ms).padStart(10)}${signed(a?.lastP50Ms).padStart(8)}${fmt(m.gapP50Ms).padStart(9)}${fmt(m.gapP99Ms).padStart(9)}${fmt(m.eventsPerSecond, 0).padStart(7)}${fmt(m.serverCpuUsPerEvent, 1).padStart(11)}${fmt(m.envoyCpuUsPerEvent, 1).padStart(13)}${fmt(m.failed, 0).padStart(8)}`,
      );
    }
    lines.push("");
  }
  const missed = report.targets.filter((target) => target.met === false);
  lines.push(
    `targets: ${report.targets.filter((target) => target.met === true).length} met, ${missed.length} missed${missed.length === 0 ? "" : `: ${missed.map((target) => `${target.configuration}@${target.concurrency} ${target.what}`).join("; ")}`}`,
  );
  if (report.problems.length > 0) lines.push(`problems: ${report.problems.join("; ")}`);
  return lines.join("\n");
}
