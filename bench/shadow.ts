// The shadow comparison's noise-floor rule on seeded comparisons: the canary stage's own windows
// and rule (src/pipeline/canary/diff.ts, the config's defaults), fed one sampled request at a time
// (a candidate comparison and a stable-vs-stable one each) and judged every 10 samples, as a
// scrape or a status read would judge them while the windows fill and slide. For a candidate as
// non-deterministic as the stable pool (an exact field that flips, a number that jitters): how
// many runs ever call a field different (false findings); for a candidate that changed: how many
// samples before the field differs. In process: the rule's arithmetic decides these numbers
// (test/e2e/canary-shadow.test.ts proves the same rule through Envoy).
// Run after a build: node dist/bench/shadow.js [results.json] [--confidence 0.95] [--min-comparisons 30] [--seeds 1000]
import { writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { routeCanarySchema } from "../src/pipeline/canary/config.js";
import { type FieldComparison, FieldWindow, judgeField } from "../src/pipeline/canary/diff.js";
import { seededRandom } from "../src/util/seeded-random.js";

const SAMPLES = 3_000;
const JUDGED_EVERY = 10;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { confidence: { type: "string" }, "min-comparisons": { type: "string" }, seeds: { type: "string" } },
});
const SEEDS = Number(values.seeds ?? 1_000);
const shadow = routeCanarySchema.parse({
  stable: "v1",
  candidates: [{ pool: "v2", weight: 0 }],
  shadow: {
    pool: "v2",
    ...(values.confidence === undefined ? {} : { confidence: Number(values.confidence) }),
    ...(values["min-comparisons"] === undefined ? {} : { minComparisons: Number(values["min-comparisons"]) }),
  },
}).shadow;
if (shadow === undefined) throw new Error("no shadow defaults");
const settings = shadow;

/** One sampled request: the candidate's comparison and the stable-vs-stable one. */
type Draw = (random: () => number) => { candidate: FieldComparison; noise: FieldComparison };

/** An exact field that two stable answers disagree on with probability `noise`, the candidate with `candidate`. */
function flipping(noise: number, candidate: number): Draw {
  return (random) => ({ candidate: { agree: !(random() < candidate) }, noise: { agree: !(random() < noise) } });
}

/** A number: each answer the truth plus uniform jitter of ±`jitter`, the candidate's shifted by `shift`. */
function jittering(jitter: number, shift: number): Draw {
  return (random) => {
    const answer = () => (random() * 2 - 1) * jitter;
    const primary = answer();
    const difference = (other: number) => ({ agree: other === primary, difference: other - primary });
    return { candidate: difference(shift + answer()), noise: difference(answer()) };
  };
}

/** Samples until the field was first judged different, or undefined. */
function run(draw: Draw, seed: number): number | undefined {
  const random = seededRandom(seed);
  const candidate = new FieldWindow(settings.window);
  const noise = new FieldWindow(settings.window);
  for (let sample = 1; sample <= SAMPLES; sample++) {
    const comparison = draw(random);
    candidate.add(comparison.candidate);
    noise.add(comparison.noise);
    if (sample % JUDGED_EVERY === 0 && judgeField(candidate.samples, noise.samples, settings).differs) return sample;
  }
  return undefined;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

const CASES: readonly { readonly name: string; readonly changed: boolean; readonly draw: Draw }[] = [
  { name: "exact, deterministic, unchanged", changed: false, draw: flipping(0, 0) },
  { name: "exact, stable pairs differ 10%, candidate 10%", changed: false, draw: flipping(0.1, 0.1) },
  { name: "exact, stable pairs differ 50%, candidate 50%", changed: false, draw: flipping(0.5, 0.5) },
  { name: "exact, always different (a timestamp)", changed: false, draw: flipping(1, 1) },
  { name: "number, jitter ±1, unchanged", changed: false, draw: jittering(1, 0) },
  { name: "exact, deterministic, candidate differs 10%", changed: true, draw: flipping(0, 0.1) },
  { name: "exact, stable pairs differ 10%, candidate 30%", changed: true, draw: flipping(0.1, 0.3) },
  { name: "exact, stable pairs differ 50%, candidate 80%", changed: true, draw: flipping(0.5, 0.8) },
  { name: "number, no jitter, shifted by 0.01", changed: true, draw: jittering(0, 0.01) },
  { name: "number, jitter ±1, shifted by 1", changed: true, draw: jittering(1, 1) },
  { name: "number, jitter ±1, shifted by 2.5", changed: true, draw: jittering(1, 2.5) },
];

const results = CASES.map(({ name, changed, draw }, index) => {
  const found = Array.from({ length: SEEDS }, (_, seed) => run(draw, 10_000 * (index + 1) + seed))
    .flatMap((sample) => (sample === undefined ? [] : [sample]))
    .sort((a, b) => a - b);
  return {
    name,
    changed,
    runs: SEEDS,
    found: found.length,
    samplesToFind:
      found.length === 0 ? null : { median: quantile(found, 0.5), p90: quantile(found, 0.9), max: found.at(-1) },
  };
});

for (const result of results) {
  const when =
    result.samplesToFind === null
      ? ""
      : `; samples to find: median ${result.samplesToFind.median}, p90 ${result.samplesToFind.p90}, max ${result.samplesToFind.max}`;
  console.log(
    `${result.name}: ${result.changed ? "found" : "false findings"} ${result.found} of ${result.runs}${when}`,
  );
}
const [file] = positionals;
if (file !== undefined) {
  const settingsUsed = {
    window: settings.window,
    minComparisons: settings.minComparisons,
    confidence: settings.confidence,
    minDifference: settings.minDifference,
    noiseQuantile: settings.noiseQuantile,
  };
  await writeFile(
    file,
    `${JSON.stringify({ settings: settingsUsed, samples: SAMPLES, judgedEvery: JUDGED_EVERY, results }, null, 2)}\n`,
  );
}
