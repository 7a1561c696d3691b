// Sentiment-like answers for evaluating the drift monitor (bench/drift-eval.ts, and the unit test
// of its false-alarm and detection targets): a seeded generator, the steady population (a label of
// three values, a score in [0, 1], a text length, prompt tokens) and the shifted ones.
import type { Verdict } from "../src/pipeline/drift/compare.js";
import { driftSchema } from "../src/pipeline/drift/config.js";
import { VersionProfile } from "../src/pipeline/drift/profile.js";
import { seededRandom } from "../src/util/seeded-random.js";

const SPECS = [
  { path: "label", kind: "categorical" },
  { path: "score", kind: "numeric" },
  { path: "text", kind: "length" },
] as const;
const SECTION = driftSchema.parse({});
const OPTIONS = { relativeAccuracy: SECTION.relativeAccuracy, maxCategories: SECTION.maxCategories };
/** The default minimum sample and thresholds. */
export const COMPARE = { minSamples: SECTION.minSamples, thresholds: SECTION.thresholds };

export interface Population {
  readonly labels: readonly [number, number, number];
  readonly score: (random: () => number) => number;
  readonly length: (random: () => number) => number;
  readonly tokens: (random: () => number) => number;
}

export const STEADY: Population = {
  labels: [0.7, 0.2, 0.1],
  score: (random) => Math.min(1, Math.max(0, 0.6 + 0.15 * (random() + random() + random() - 1.5))),
  length: (random) => 20 + Math.floor(random() * random() * 200),
  tokens: (random) => 20 + Math.floor(random() * 60),
};

export const SCENARIOS: Readonly<Record<string, { readonly population: Population; readonly expect: Verdict }>> = {
  // PSI of the label ≈ 0.21: (0.7, 0.2, 0.1) → (0.48, 0.32, 0.2).
  label_shift_psi_0_2: { population: { ...STEADY, labels: [0.48, 0.32, 0.2] }, expect: "model_drift" },
  score_collapse: { population: { ...STEADY, score: () => 0.98 }, expect: "model_drift" },
  longer_answers: { population: { ...STEADY, length: (random) => 3 * STEADY.length(random) }, expect: "model_drift" },
  input_shift: {
    population: { ...STEADY, tokens: (random) => 3 * STEADY.tokens(random), labels: [0.5, 0.3, 0.2] },
    expect: "input_drift",
  },
};

export function profile(version: string): VersionProfile {
  return new VersionProfile(version, SPECS, OPTIONS);
}

export function observe(target: VersionProfile, population: Population, random: () => number): void {
  const u = random();
  const [a, b] = population.labels;
  const label = u < a ? "POSITIVE" : u < a + b ? "NEGATIVE" : "NEUTRAL";
  const score = population.score(random);
  const text = "x".repeat(population.length(random));
  target.observePayload((index) => (index === 0 ? label : index === 1 ? score : text));
  const tokens = population.tokens(random);
  target.observeInput({ promptTokens: tokens, cost: tokens * 4, tier: tokens > 200 ? "heavy" : "light" });
}

/** A profile of `answers` answers of `population`, drawn from `seed`. */
export function profileOf(version: string, population: Population, seed: number, answers: number): VersionProfile {
  const target = profile(version);
  const random = seededRandom(seed);
  for (let i = 0; i < answers; i++) observe(target, population, random);
  return target;
}
