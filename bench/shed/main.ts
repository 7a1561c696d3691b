// `make bench-shed`: runs the load-shedding sweep once and the retry scenarios --repeats times,
// writes bench/results/shed-<date>.json (and .md: the retry table, worst run per metric) and prints
// tables with the targets of issues 5 and 17 checked against the numbers.
// Run: npx tsc -p . && node dist/bench/shed/main.js [--point-s 12] [--points 0.5,1,2,4] [--variants none,guard,critical_only] [--admission '{"requestWeight":4}'] [--scenarios immediate@4,backoff@2,backoff@1] [--repeats 5] [--scenario-s 20] [--out file]
// Companion scenarios (companions.ts) are named by a suffix: backoff@1+storm, backoff@2+spoof (with
// backoff@2 to compare), backoff@0.3+tenants and backoff@0.3+tenant10x.
// --points "" or --scenarios "" leaves that part out.
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { loadGuardConfigObject } from "../../src/devstack/stack.js";
import { companionMarkdownTable, companionScenarios, companionTargets } from "./companions.js";
import { runShedBench } from "./harness.js";
import { formatTable, type ShedReport } from "./report.js";
import {
  formatRetryTable,
  parseScenario,
  retryMarkdownTable,
  retryRunInconsistencies,
  retryTargets,
  type ShedRunReport,
} from "./retry-report.js";
import { CLASS_SOURCES } from "./traffic.js";
import { DEFAULT_OPTIONS, type Variant } from "./workload.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** The targets, evaluated on the guard's points (and against no protection below capacity). */
function targets(report: ShedReport): string[] {
  const guard = report.points.filter((point) => point.variant === "guard");
  const none = report.points.filter((point) => point.variant === "none");
  const unloadedP99 = report.calibration.unloaded.guard?.p99Ms;
  const lines: string[] = [];
  const verdict = (ok: boolean): string => (ok ? "met   " : "MISSED");
  for (const point of guard) {
    if (point.load >= 2) {
      lines.push(
        `${verdict(point.goodputShareOfCapacity >= 0.9)} ${point.load}x goodput ≥ 90% of capacity: ${Math.round(point.goodputShareOfCapacity * 100)}%`,
      );
    }
    lines.push(
      `${verdict(point.byClass.critical.keptShare >= 0.99)} ${point.load}x critical kept ≥ 99%: ${(point.byClass.critical.keptShare * 100).toFixed(1)}%`,
    );
    const p99 = point.byClass.critical.admittedP99Ms;
    if (unloadedP99 !== undefined && p99 !== null) {
      lines.push(
        `${verdict(p99 <= 2 * unloadedP99)} ${point.load}x admitted critical p99 ≤ 2× unloaded (${unloadedP99} ms): ${p99} ms`,
      );
      const unloadedSlowdown = report.calibration.unloaded.guard?.slowdownP99;
      lines.push(
        `       ${point.load}x (info) size-normalised: critical p99 of latency ÷ own work ${point.byClass.critical.admittedSlowdownP99}, unloaded ${unloadedSlowdown}`,
      );
    }
    const baseline = none.find((candidate) => candidate.load === point.load);
    if (point.load < 1 && baseline?.admittedP99Ms != null && point.admittedP99Ms !== null) {
      const worse = point.admittedP99Ms / baseline.admittedP99Ms - 1;
      lines.push(
        `${verdict(worse <= 0.05)} ${point.load}x p99 ≤ 5% worse than no protection: ${point.admittedP99Ms} vs ${baseline.admittedP99Ms} ms (${(worse * 100).toFixed(1)}%)`,
      );
    }
  }
  return lines;
}

/**
 * The critical-only lower bound against the same latency target: when even an oracle that sends the
 * server nothing but the critical requests misses it, no admission policy keeping them all can meet it.
 */
function bound(report: ShedReport): string[] {
  const { unloaded } = report.calibration;
  // The target is stated against the guard's unloaded p99; without a guard run, the bare stack's.
  const unloadedP99 = unloaded.guard?.p99Ms ?? unloaded.critical_only?.p99Ms;
  if (unloadedP99 === undefined) return [];
  return report.points
    .filter((point) => point.variant === "critical_only")
    .map((point) => {
      const p99 = point.byClass.critical.admittedP99Ms;
      const within = p99 !== null && p99 <= 2 * unloadedP99;
      return `${within ? "under " : "ABOVE "} ${point.load}x critical-only p99 ${p99} ms vs 2× unloaded ${unloadedP99} ms = ${2 * unloadedP99} ms (p50 ${point.byClass.critical.admittedP50Ms} ms, busy slots ${Math.round(point.telemetry.serverUtilisation * 100)}%)`;
    });
}

/** Issue 17's targets on the guard's worst runs, and any run whose bookkeeping does not add up. */
function retryLines(report: ShedRunReport): string[] {
  const lines: string[] = [];
  for (const worst of report.retry.worst.filter((item) => item.variant === "guard")) {
    for (const target of retryTargets(worst))
      lines.push(`${target.met ? "met   " : "MISSED"} ${worst.scenario} (worst of ${worst.runs}) ${target.text}`);
    lines.push(`       ${worst.scenario} (info) goodput within the SLO: ${worst.goodputWithinSlo}`);
  }
  lines.push(...companionTargets(report.retry.runs));
  for (const run of report.retry.runs)
    for (const problem of retryRunInconsistencies(run))
      lines.push(`BROKEN ${run.variant} ${run.scenario} #${run.repeat}: ${problem}`);
  return lines;
}

function markdown(report: ShedRunReport): string {
  const { retry } = report.options;
  return [
    `# make bench-shed, retry scenarios, ${report.date}`,
    "",
    `Capacity ${report.calibration.capacityPerSecond} req/s. Closed-loop users (${JSON.stringify(report.retry.users)}), think ${retry.thinkMs} ms, attempt timeout ${retry.attemptTimeoutMs} ms, ${retry.scenarioMs / 1000} s per run, ${retry.repeats} run(s) per set-up and scenario; each cell is the worst run.`,
    "",
    `Classes are sent from one loopback address each (critical ${CLASS_SOURCES.critical}, standard ${CLASS_SOURCES.standard}, sheddable ${CLASS_SOURCES.sheddable}) and given by the guard's identity rules on source.address; requests it classed so: ${JSON.stringify(report.guardClasses)}.`,
    "",
    retryMarkdownTable(report.retry.worst),
    "",
    ...companionMarkdown(report),
  ].join("\n");
}

/** The companion scenarios' table (issue 17: a pool in a 5xx storm, a spoofer, a tenant over budget), if any ran. */
function companionMarkdown(report: ShedRunReport): string[] {
  const scenarios = companionScenarios(Object.keys(report.retry.users));
  if (scenarios.length === 0) return [];
  return [
    "Companion scenarios: rates and p99 of the users, each cell the worst run; the companion's columns list every run.",
    "",
    companionMarkdownTable(report.retry.runs, scenarios),
    "",
  ];
}

type Json = Record<string, unknown>;

/** `over` laid onto `base`, objects merged key by key: an experiment names only what it changes. */
function merged(base: Json, over: Json): Json {
  const result: Json = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const under = result[key];
    const bothObjects = [under, value].every(
      (item) => typeof item === "object" && item !== null && !Array.isArray(item),
    );
    result[key] = bothObjects ? merged(under as Json, value as Json) : value;
  }
  return result;
}

const { values } = parseArgs({
  options: {
    "point-s": { type: "string" },
    points: { type: "string" },
    variants: { type: "string" },
    out: { type: "string" },
    // JSON laid onto the guard config's `admission` section, e.g. '{"requestWeight":4}'.
    admission: { type: "string" },
    scenarios: { type: "string" },
    repeats: { type: "string" },
    "scenario-s": { type: "string" },
  },
});
const list = (text: string): string[] => text.split(",").filter((item) => item.trim() !== "");
const admission =
  values.admission === undefined
    ? undefined
    : merged(((await loadGuardConfigObject()).admission ?? {}) as Json, JSON.parse(values.admission) as Json);
const options = {
  ...DEFAULT_OPTIONS,
  ...(admission === undefined ? {} : { guardConfig: { admission } }),
  ...(values["point-s"] === undefined ? {} : { pointMs: Number(values["point-s"]) * 1000 }),
  ...(values.points === undefined ? {} : { points: list(values.points).map(Number) }),
  ...(values.variants === undefined ? {} : { variants: values.variants.split(",") as Variant[] }),
  retry: {
    ...DEFAULT_OPTIONS.retry,
    ...(values.scenarios === undefined ? {} : { scenarios: list(values.scenarios).map(parseScenario) }),
    ...(values.repeats === undefined ? {} : { repeats: Number(values.repeats) }),
    ...(values["scenario-s"] === undefined ? {} : { scenarioMs: Number(values["scenario-s"]) * 1000 }),
  },
  log: (line: string) => process.stderr.write(`${line}\n`),
};
const report = await runShedBench(options);
const file = values.out ?? `${ROOT}bench/results/shed-${report.date.slice(0, 10)}.json`;
mkdirSync(`${ROOT}bench/results`, { recursive: true });
writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
const markdownFile = file.replace(/(\.json)?$/, ".md");
if (report.retry.runs.length > 0) writeFileSync(markdownFile, markdown(report));
console.log(
  `capacity ${report.calibration.capacityPerSecond} req/s; unloaded p50/p99: ${JSON.stringify(report.calibration.unloaded)}`,
);
console.log(`guard's classes from source addresses: ${JSON.stringify(report.guardClasses)}`);
console.log(formatTable(report));
console.log("\nTargets (guard):");
for (const line of targets(report)) console.log(`  ${line}`);
const bounds = bound(report);
if (bounds.length > 0) console.log("\nLower bound (critical requests only, no protection):");
for (const line of bounds) console.log(`  ${line}`);
if (report.retry.runs.length > 0) {
  console.log(
    `\nRetry scenarios, closed-loop users ${JSON.stringify(report.retry.users)}, worst of ${options.retry.repeats}:`,
  );
  console.log(formatRetryTable(report.retry.worst));
  console.log("\nTargets (guard, issue 17):");
  for (const line of retryLines(report)) console.log(`  ${line}`);
  console.log(`wrote ${markdownFile}`);
}
console.log(`\nwrote ${file}`);
