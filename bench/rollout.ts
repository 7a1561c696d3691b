// The rollout health rule on seeded traffic (issue #21's evaluation, the statistics part): the
// canary stage's own CandidateState and health rule (src/pipeline/canary/), fed one answer at a
// time as the stage feeds them, for a candidate that breaks its contract in 2% of answers (how
// many answers, and how many bad ones, before quarantine) and for candidates as good as the
// stable version at several background violation rates (false quarantines over 100 000 answers).
// In process: the rule's arithmetic, not Envoy's, decides these numbers (test/e2e/canary.test.ts
// proves the same rule through Envoy).
// Run after a build: node dist/bench/rollout.js [results.json] [--confidence 0.95] [--min-requests 30]
import { writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { CandidateState } from "../src/pipeline/canary/candidate.js";
import { CONFIDENCE_LEVELS, type Confidence, routeCanarySchema } from "../src/pipeline/canary/config.js";
import { seededRandom } from "../src/util/seeded-random.js";

const SEEDS = 200;
const FINE_ANSWERS = 100_000;
const BAD_RATE = 0.02;
const BACKGROUND_RATES = [0, 0.001, 0.002, 0.005];

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { confidence: { type: "string" }, "min-requests": { type: "string" } },
});
const confidence = Number(values.confidence ?? 0.95);
if (!CONFIDENCE_LEVELS.includes(confidence as Confidence)) throw new Error(`--confidence: one of ${CONFIDENCE_LEVELS}`);
const settings = routeCanarySchema.parse({
  stable: "v1",
  candidates: [{ pool: "v2", weight: 0.1 }],
  health: {
    confidence,
    ...(values["min-requests"] === undefined ? {} : { minRequests: Number(values["min-requests"]) }),
  },
});

/** Answers until quarantine (undefined: none within `limit`), and the violations among them. */
function run(violationRate: number, seed: number, limit: number): { answers?: number; violations: number } {
  const random = seededRandom(seed);
  const state = new CandidateState(() => 0);
  let violations = 0;
  for (let answer = 1; answer <= limit; answer++) {
    const violated = random() < violationRate;
    if (violated) violations++;
    if (state.record(violated ? "violated" : "ok", settings)?.kind === "quarantined")
      return { answers: answer, violations };
  }
  return { violations };
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

const bad = Array.from({ length: SEEDS }, (_, seed) => run(BAD_RATE, 1_000 + seed, FINE_ANSWERS));
const caught = bad.flatMap((result) => (result.answers === undefined ? [] : [result]));
const answers = caught.map((result) => result.answers ?? 0).sort((a, b) => a - b);
const violations = caught.map((result) => result.violations).sort((a, b) => a - b);
const fine = BACKGROUND_RATES.map((rate) => {
  const quarantined = Array.from({ length: SEEDS }, (_, seed) => run(rate, 5_000 + seed, FINE_ANSWERS)).flatMap(
    (result) => (result.answers === undefined ? [] : [result.answers]),
  );
  return {
    violationRate: rate,
    runs: SEEDS,
    falseQuarantines: quarantined.length,
    atAnswers: quarantined.sort((a, b) => a - b),
  };
});

const results = {
  health: settings.health,
  badCandidate: {
    violationRate: BAD_RATE,
    runs: SEEDS,
    caught: caught.length,
    answersBeforeQuarantine: { median: quantile(answers, 0.5), p90: quantile(answers, 0.9), max: answers.at(-1) },
    // Under `shadow` these reached clients; under `enforce` the guard withheld every one.
    violationsBeforeQuarantine: {
      median: quantile(violations, 0.5),
      p90: quantile(violations, 0.9),
      max: violations.at(-1),
    },
  },
  fineCandidates: fine,
};
console.log(JSON.stringify(results, null, 2));
const [out] = positionals;
if (out !== undefined) await writeFile(out, `${JSON.stringify(results, null, 2)}\n`);
