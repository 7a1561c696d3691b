// The drift monitor's evaluation (issue 20): per scenario, answers of a new version until its
// verdict says so, and false alarms over long runs of an unchanged version. Profiles are fed
// directly (VersionProfile.observePayload / observeInput, as the monitor does per answer) from a
// seeded generator of sentiment-like answers: a label of three values, a score in [0, 1], a text
// length, and inputs (prompt tokens, cost, tier). The baseline has 5 000 answers; a version is
// judged every 10 answers (detection) or every 100 (false alarms), with the default thresholds.
// Run after a build: node dist/bench/drift-eval.js [results.json]
import { writeFile } from "node:fs/promises";
import { compareVersion, type Verdict } from "../src/pipeline/drift/compare.js";
import { seededRandom } from "../src/util/seeded-random.js";
import { COMPARE, observe, type Population, profile, profileOf, SCENARIOS, STEADY } from "./drift-population.js";

const baseline = profileOf("v1", STEADY, 1, 5_000);

/** Answers until the verdict is `expect` (checked every 10), or null within `limit`; and any other alarm before. */
function untilDetected(population: Population, expect: Verdict, seed: number, limit: number) {
  const random = seededRandom(seed);
  const version = profile("v2");
  let wrong = 0;
  for (let answers = 1; answers <= limit; answers++) {
    observe(version, population, random);
    if (answers % 10 !== 0) continue;
    const { verdict } = compareVersion(version, baseline, COMPARE);
    if (verdict === expect) return { answers, wrong };
    if (verdict !== "stable" && verdict !== "insufficient_data") wrong++;
  }
  return { answers: null, wrong };
}

const RUNS = 20;
const detection: Record<string, unknown> = {};
for (const [name, { population, expect }] of Object.entries(SCENARIOS)) {
  const runs = Array.from({ length: RUNS }, (_, run) => untilDetected(population, expect, 100 + run, 5_000));
  const answers = runs.map((run) => run.answers ?? Number.POSITIVE_INFINITY).sort((a, b) => a - b);
  detection[name] = {
    expect,
    runs: RUNS,
    medianAnswers: answers[Math.floor(RUNS / 2)],
    worstAnswers: answers.at(-1) === Number.POSITIVE_INFINITY ? "not within 5000" : answers.at(-1),
    detectedWithin500: answers.filter((n) => n <= 500).length,
    otherVerdictsBefore: runs.reduce((sum, run) => sum + run.wrong, 0),
  };
}

/** Verdicts other than stable over `total` answers of the unchanged model, judged every 100 answers. */
function falseAlarms(seed: number, total: number): { readonly checks: number; readonly alarms: number } {
  const random = seededRandom(seed);
  const version = profile("v1b");
  let checks = 0;
  let alarms = 0;
  for (let answers = 1; answers <= total; answers++) {
    observe(version, STEADY, random);
    if (answers % 100 !== 0 || answers < COMPARE.minSamples) continue;
    checks++;
    const { verdict } = compareVersion(version, baseline, COMPARE);
    if (verdict !== "stable") alarms++;
  }
  return { checks, alarms };
}

const LONG_RUNS = 5;
const long = Array.from({ length: LONG_RUNS }, (_, run) => falseAlarms(900 + run, 100_000));
const results = {
  node: process.version,
  thresholds: COMPARE.thresholds,
  minSamples: COMPARE.minSamples,
  baselineAnswers: 5_000,
  detection,
  unchanged: {
    runs: LONG_RUNS,
    answersPerRun: 100_000,
    checks: long.reduce((sum, run) => sum + run.checks, 0),
    falseAlarms: long.reduce((sum, run) => sum + run.alarms, 0),
  },
};
console.log(JSON.stringify(results, null, 2));
const out = process.argv[2];
if (out !== undefined) await writeFile(out, `${JSON.stringify(results, null, 2)}\n`);
