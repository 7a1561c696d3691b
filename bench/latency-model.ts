// `make bench-latency-model`: how well the complexity stage's latency model predicts the demo
// model's latency on the shed benchmark's request mix: the median absolute relative error
// |predicted − actual| / actual (target ≤ 25%, issue 17), for the first model (recursive least
// squares, bench/latency-model-baseline.ts) and the current one (src/pipeline/complexity/model.ts)
// on the same samples.
// 1. In process (seconds): the demo's real latency function and batcher in virtual time, three
//    request mixes (the shed mix, output ∝ input, one output budget for 95% of requests), one at a
//    time and open loop at 0.5× and 0.8× the server's capacity; see bench/latency-model-sim.ts.
// 2. Live (~4 minutes): Envoy + guard + demo model, the shed mix one at a time and then at 0.5×
//    capacity; the guard's own prediction of each request against the upstream time Envoy logged,
//    and the same trace replayed through both models; see bench/latency-model-live.ts.
// Writes bench/results/latency-model-<date>.json and prints the tables.
// Run: npx tsc -p . && node dist/bench/latency-model.js [--requests 4000] [--live-idle 150]
//   [--live-requests 1200] [--no-live] [--out file]
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { complexityRouteSchema } from "../src/pipeline/complexity/config.js";
import { LatencyModel } from "../src/pipeline/complexity/model.js";
import { percentile } from "../src/util/percentile.js";
import { LatencyModel as BaselineModel } from "./latency-model-baseline.js";
import { type LiveRun, liveTrace, runLive } from "./latency-model-live.js";
import {
  capacityPerSecond,
  type Mix,
  ONE_BUDGET,
  type Predictor,
  type Replay,
  replay,
  requests,
  StageEmulation,
  TRANSPORT_MS,
  type Trace,
  trace,
} from "./latency-model-sim.js";
import { DEFAULT_OPTIONS } from "./shed/workload.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TARGET = 0.25;
const MIXES: readonly Mix[] = ["shed", "collinear", "one_budget"];
const LOADS: readonly number[] = [0, 0.5, 0.8, 2];
/** At 2× capacity: at most this many requests at the server (2 per slot), the rest shed, as admission would. */
const ADMITTED_PER_SLOT = 2;
const SEED = 11;

const { values: args } = parseArgs({
  options: {
    requests: { type: "string", default: "4000" },
    "live-idle": { type: "string", default: "150" },
    "live-requests": { type: "string", default: "1200" },
    "no-live": { type: "boolean", default: false },
    out: { type: "string" },
  },
});

const server = DEFAULT_OPTIONS.server;
const modelConfig = complexityRouteSchema.parse({ enabled: true }).model;
/** Errors count from the first prediction the stage publishes (the fitted model's). */
const WARM_UP = modelConfig.minSamples;

type ModelName = "before" | "after";
const MODELS: Record<ModelName, () => Predictor> = {
  before: () => new BaselineModel(modelConfig),
  after: () => new LatencyModel(modelConfig),
};

interface ErrorSummary {
  readonly samples: number;
  readonly medianRelativeError: number;
  readonly p90RelativeError: number;
}

interface ModelResult extends ErrorSummary {
  /** Against the request's unloaded latency (demo work time + the transport's median). */
  readonly medianErrorVsUnloaded: number;
  readonly minIntercept: number;
  readonly minCoefficient: number;
  readonly coefficients: Record<string, number>;
}

function round(value: number, digits = 4): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

function summary(errors: readonly number[]): ErrorSummary {
  return {
    samples: errors.length,
    medianRelativeError: round(percentile(errors, 0.5) ?? Number.NaN),
    p90RelativeError: round(percentile(errors, 0.9) ?? Number.NaN),
  };
}

function modelResult(result: Replay): ModelResult {
  return {
    ...summary(result.relativeErrors),
    medianErrorVsUnloaded: round(percentile(result.unloadedErrors, 0.5) ?? Number.NaN),
    minIntercept: round(result.minIntercept, 1),
    minCoefficient: round(result.minCoefficient, 1),
    coefficients: Object.fromEntries(
      Object.entries(result.coefficients).map(([name, value]) => [name, round(value, 1)]),
    ),
  };
}

function replayed(model: ModelName, entries: readonly Trace[], learnOutput = true): Replay {
  return replay(new StageEmulation(MODELS[model](), learnOutput), entries, WARM_UP, TRANSPORT_MS);
}

function run(model: ModelName, entries: readonly Trace[], learnOutput = true): ModelResult {
  return modelResult(replayed(model, entries, learnOutput));
}

/** Errors of the requests `pick` selects, after the warm-up. */
function subset(result: Replay, entries: readonly Trace[], pick: (entry: Trace) => boolean): ErrorSummary {
  const errors: number[] = [];
  entries.forEach((entry, index) => {
    if (index < WARM_UP || !pick(entry)) return;
    errors.push(Math.abs((result.predictions[index] as number) - entry.observedMs) / entry.observedMs);
  });
  return summary(errors);
}

const otherBudget = (entry: Trace): boolean =>
  (JSON.parse(entry.request.body) as { max_tokens?: number }).max_tokens !== ONE_BUDGET;

interface Scenario {
  readonly mix: Mix;
  readonly load: number;
  /** Requests offered, and those served (above capacity the rest are shed). */
  readonly requests: number;
  readonly served: number;
  /** Median observed latency ÷ unloaded latency: how much the load inflated the samples. */
  readonly inflationP50: number;
  readonly before: ModelResult;
  readonly after: ModelResult;
  /** The current model with the answer length known (output.learn: false; the demo fills max_tokens). */
  readonly afterOutputKnown: ModelResult;
  /** one_budget only: the requests with another output budget than the 95% (the rare ones the fit must extrapolate to). */
  readonly otherBudgets?: Record<ModelName, ErrorSummary>;
}

async function inProcess(count: number): Promise<{ capacity: Record<string, number>; scenarios: Scenario[] }> {
  const capacity: Record<string, number> = {};
  const scenarios: Scenario[] = [];
  for (const mix of MIXES) {
    const scored = requests(mix, count, SEED, server);
    const perSecond = await capacityPerSecond(
      requests(mix, 400, SEED + 100, server).map((request) => request.workMs),
      server,
    );
    capacity[mix] = round(perSecond, 2);
    for (const load of LOADS) {
      const admitted = load > 1 ? ADMITTED_PER_SLOT * server.capacity : Number.POSITIVE_INFINITY;
      const entries = await trace(scored, load, perSecond, server, SEED + 200, admitted);
      const inflation = entries.map((entry) => entry.observedMs / (entry.request.workMs + TRANSPORT_MS));
      const before = replayed("before", entries);
      const after = replayed("after", entries);
      scenarios.push({
        mix,
        load,
        requests: count,
        served: entries.length,
        inflationP50: round(percentile(inflation, 0.5) ?? Number.NaN, 3),
        before: modelResult(before),
        after: modelResult(after),
        afterOutputKnown: run("after", entries, false),
        ...(mix === "one_budget"
          ? {
              otherBudgets: {
                before: subset(before, entries, otherBudget),
                after: subset(after, entries, otherBudget),
              },
            }
          : {}),
      });
    }
  }
  return { capacity, scenarios };
}

interface LiveSummary {
  readonly capacityPerSecond: number;
  readonly phases: ReadonlyArray<{ readonly load: number; readonly requests: number }>;
  readonly statuses: Record<string, number>;
  /** The guard's own predictions (access log metadata) against Envoy's upstream time, per phase and overall. */
  readonly guard: Record<string, ErrorSummary>;
  readonly guardCoefficients: Record<string, number>;
  readonly guardFitted: boolean;
  /** guard_complexity_output_tokens_estimate{route="chat"} after the run. */
  readonly guardOutputTokensEstimate: number | undefined;
  /** The live trace replayed through both models (the stage emulated as configured) and with the output known. */
  readonly replay: Record<"before" | "after" | "afterOutputKnown", ModelResult>;
}

function liveSummary(live: LiveRun, phases: LiveSummary["phases"]): LiveSummary {
  const statuses: Record<string, number> = {};
  for (const record of live.records) statuses[record.status] = (statuses[record.status] ?? 0) + 1;
  const guardErrors = (phase?: number): number[] =>
    live.records
      .filter(
        (record) =>
          record.index >= WARM_UP &&
          record.status === 200 &&
          (phase === undefined || record.phase === phase) &&
          record.predictedMs !== undefined &&
          record.upstreamMs !== undefined &&
          record.upstreamMs > 0,
      )
      .map(
        (record) =>
          Math.abs((record.predictedMs as number) - (record.upstreamMs as number)) / (record.upstreamMs as number),
      );
  const guard: Record<string, ErrorSummary> = { all: summary(guardErrors()) };
  phases.forEach((phase, index) => {
    guard[`load ${phase.load}`] = summary(guardErrors(index));
  });
  const entries = liveTrace(live);
  const estimate = /^guard_complexity_output_tokens_estimate\{route="chat"\} (\S+)$/m.exec(live.metrics)?.[1];
  return {
    capacityPerSecond: round(live.capacityPerSecond, 2),
    phases,
    statuses,
    guard,
    guardCoefficients: Object.fromEntries(
      Object.entries(live.coefficients).map(([name, value]) => [name, round(value, 1)]),
    ),
    guardFitted: live.guardFitted,
    guardOutputTokensEstimate: estimate === undefined ? undefined : round(Number(estimate), 1),
    replay: {
      before: run("before", entries),
      after: run("after", entries),
      afterOutputKnown: run("after", entries, false),
    },
  };
}

function percent(value: number): string {
  return `${(value * 100).toFixed(1)}%`;
}

function scenarioTable(scenarios: readonly Scenario[]): string {
  const header =
    "mix         load  inflation  median error before → after (output known)  p90 before → after (output known)  min intercept before / after  min coefficient after";
  const rows = scenarios.map((scenario) =>
    [
      scenario.mix.padEnd(11),
      String(scenario.load).padEnd(5),
      `${scenario.inflationP50.toFixed(2)}×`.padEnd(10),
      `${percent(scenario.before.medianRelativeError)} → ${percent(scenario.after.medianRelativeError)} (${percent(scenario.afterOutputKnown.medianRelativeError)})`.padEnd(
        43,
      ),
      `${percent(scenario.before.p90RelativeError)} → ${percent(scenario.after.p90RelativeError)} (${percent(scenario.afterOutputKnown.p90RelativeError)})`.padEnd(
        34,
      ),
      `${scenario.before.minIntercept} / ${scenario.after.minIntercept} ms`.padEnd(29),
      String(scenario.after.minCoefficient),
    ].join(" "),
  );
  const budgets = scenarios.flatMap((scenario) =>
    scenario.otherBudgets === undefined
      ? []
      : [
          `one_budget at ${scenario.load}×, the ${scenario.otherBudgets.after.samples} requests with another budget: median ${percent(scenario.otherBudgets.before.medianRelativeError)} → ${percent(scenario.otherBudgets.after.medianRelativeError)}, p90 ${percent(scenario.otherBudgets.before.p90RelativeError)} → ${percent(scenario.otherBudgets.after.p90RelativeError)}`,
        ],
  );
  return [header, ...rows, ...budgets].join("\n");
}

function liveTable(live: LiveSummary): string {
  const lines = [`capacity ${live.capacityPerSecond}/s, statuses ${JSON.stringify(live.statuses)}`];
  for (const [name, errors] of Object.entries(live.guard)) {
    lines.push(
      `guard (live) ${name.padEnd(9)} median ${percent(errors.medianRelativeError)}  p90 ${percent(errors.p90RelativeError)}  (${errors.samples} requests)`,
    );
  }
  for (const [name, result] of Object.entries(live.replay)) {
    lines.push(
      `replay ${name.padEnd(16)} median ${percent(result.medianRelativeError)}  p90 ${percent(result.p90RelativeError)}  min intercept ${result.minIntercept} ms  ${JSON.stringify(result.coefficients)}`,
    );
  }
  lines.push(
    `guard coefficients ${JSON.stringify(live.guardCoefficients)}, learned output ${live.guardOutputTokensEstimate} tokens`,
  );
  return lines.join("\n");
}

const count = Number(args.requests);
const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};
const local = await inProcess(count);
log(scenarioTable(local.scenarios));
let live: LiveSummary | undefined;
if (!args["no-live"]) {
  const phases = [
    { load: 0, requests: Number(args["live-idle"]) },
    { load: 0.5, requests: Number(args["live-requests"]) },
  ];
  const result = await runLive({ server, phases, seed: SEED, clientTimeoutMs: 10_000, log });
  live = liveSummary(result, phases);
  log(liveTable(live));
}
const verdicts = [
  ...local.scenarios
    .filter((scenario) => scenario.load <= 0.5)
    .map((scenario) => ({
      what: `in process, ${scenario.mix} at ${scenario.load}×: median error ≤ ${percent(TARGET)}`,
      value: scenario.after.medianRelativeError,
    })),
  ...(live === undefined
    ? []
    : [
        {
          what: `live guard, all phases: median error ≤ ${percent(TARGET)}`,
          value: live.guard.all?.medianRelativeError ?? 1,
        },
      ]),
];
for (const verdict of verdicts)
  log(`${verdict.value <= TARGET ? "met   " : "MISSED"} ${verdict.what}: ${percent(verdict.value)}`);
const report = {
  date: new Date().toISOString(),
  target: TARGET,
  options: { server, requests: count, seed: SEED, warmUp: WARM_UP, model: modelConfig, transportMs: TRANSPORT_MS },
  inProcess: local,
  live,
};
const out = args.out ?? `${ROOT}bench/results/latency-model-${report.date.slice(0, 10)}.json`;
mkdirSync(new URL(".", `file://${out}`).pathname, { recursive: true });
writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
log(`wrote ${out}`);
