import t from "tap";
import type { FieldSpec } from "../../../../src/contracts/fields.js";
import type { Payload } from "../../../../src/contracts/payload.js";
import {
  compareAnswers,
  compareValues,
  type FieldComparison,
  FieldWindow,
  fieldStats,
  judgeField,
  type NoiseRule,
  quantile,
} from "../../../../src/pipeline/canary/diff.js";

const EXACT = { absolute: 0, relative: 0 };
const RULE: NoiseRule = { noiseQuantile: 0.99, minComparisons: 30, confidence: 0.95, minDifference: 0.05 };

const SPECS: FieldSpec[] = [
  { path: "label", kind: "categorical", keys: [["label"]] },
  { path: "score", kind: "numeric", keys: [["score"]] },
  { path: "meta.source", kind: "length", keys: [["meta"], ["source"]] },
];

function payloads(...values: unknown[]): Payload[] {
  return values.map((value, index) => ({ path: `$[${index}]`, value }));
}

t.test("values compare exactly, numbers within the tolerance, with their difference", async (t) => {
  t.same(compareValues("categorical", "POSITIVE", "POSITIVE", EXACT), { agree: true });
  t.same(compareValues("categorical", "POSITIVE", "positive", EXACT), { agree: false });
  t.same(compareValues("categorical", true, false, EXACT), { agree: false });
  t.same(
    compareValues("size", { b: 1, a: [1, 2] }, { a: [1, 2], b: 1 }, EXACT),
    { agree: true },
    "key order is no difference",
  );
  t.same(compareValues("numeric", 0.5, 0.75, EXACT), { agree: false, difference: 0.25 });
  t.same(compareValues("numeric", 0.5, 0.75, { absolute: 0.25, relative: 0 }), { agree: true, difference: 0.25 });
  t.same(compareValues("numeric", 100, 109, { absolute: 0, relative: 0.1 }), { agree: true, difference: 9 });
  t.same(compareValues("numeric", 100, 112, { absolute: 0, relative: 0.1 }), { agree: false, difference: 12 });
  t.same(
    compareValues("numeric", "9007199254740993", "9007199254740993", EXACT),
    { agree: true, difference: 0 },
    "int64 as a string",
  );
  t.same(compareValues("numeric", 1, "1.5", EXACT), { agree: false, difference: 0.5 });
  t.same(compareValues("numeric", 1, null, EXACT), { agree: false }, "a missing number has no difference");
  t.same(compareValues("numeric", "NaN", "NaN", EXACT), { agree: true });
});

t.test("answers compare field by field, payload by payload", async (t) => {
  const primary = payloads({ label: "POSITIVE", score: 0.8, meta: { source: "a" } });
  t.same(
    compareAnswers(
      { specs: SPECS, wrap: undefined },
      primary,
      payloads({ label: "POSITIVE", score: 0.7, meta: { source: "b" } }),
      EXACT,
    ),
    [{ agree: true }, { agree: false, difference: 0.7 - 0.8 }, { agree: false }],
  );
  const two = payloads({ label: "A", score: 1 }, { label: "B", score: 2 });
  const [label, score] = compareAnswers(
    { specs: SPECS, wrap: undefined },
    two,
    payloads({ label: "A", score: 1.5 }, { label: "B", score: 5 }),
    EXACT,
  );
  t.same(label, { agree: true });
  t.same(score, { agree: false, difference: 3 }, "the pair that differs most");
  t.same(
    compareAnswers({ specs: SPECS, wrap: undefined }, two, payloads({ label: "A", score: 1 }), EXACT).slice(0, 2),
    [{ agree: false }, { agree: false }],
    "a payload only one answer has differs on every field",
  );
  t.same(
    compareAnswers(
      { specs: [{ path: "values", kind: "size", keys: [["values"]] }], wrap: "values" },
      payloads([1, 2]),
      payloads([1, 2]),
      EXACT,
    ),
    [{ agree: true }],
    "a wrapped payload is its wrap field's value",
  );
});

t.test("a window keeps the latest comparisons and reports agreement and differences", async (t) => {
  const window = new FieldWindow(4);
  for (const difference of [9, 1, -1, 2, 3]) window.add({ agree: Math.abs(difference) <= 1, difference });
  t.same(
    window.samples.map((sample) => sample.difference),
    [3, 1, -1, 2],
    "the oldest (9) went first",
  );
  const stats = fieldStats(window.samples);
  t.equal(stats.comparisons, 4);
  t.equal(stats.agreementRate, 0.5);
  t.same(stats.differences, { count: 4, mean: 1.25, p50: 1, p90: 3, p99: 3, max: 3 });
  t.same(
    fieldStats([{ agree: true }, { agree: false }]),
    { comparisons: 2, agreementRate: 0.5 },
    "no numbers, no distribution",
  );
  t.equal(quantile([1, 2, 3, 4], 0.5), 2);
  t.equal(quantile([], 0.5), undefined);
});

/** `count` comparisons made by `make(index)`. */
function many(count: number, make: (index: number) => FieldComparison): FieldComparison[] {
  return Array.from({ length: count }, (_, index) => make(index));
}

t.test("a deterministic field that changed differs; the same field unchanged does not", async (t) => {
  const noise = many(40, () => ({ agree: true, difference: 0 }));
  const drifted = judgeField(
    many(40, () => ({ agree: false, difference: 15 })),
    noise,
    RULE,
  );
  t.equal(drifted.differs, true);
  t.equal(drifted.candidateRate, 1);
  t.equal(drifted.noiseRate, 0);
  t.ok(drifted.candidateLower > 0.9 && drifted.noiseUpper < 0.1, `${drifted.candidateLower} vs ${drifted.noiseUpper}`);
  t.equal(
    judgeField(
      many(40, () => ({ agree: true, difference: 0 })),
      noise,
      RULE,
    ).differs,
    false,
  );
  t.equal(
    judgeField(
      many(29, () => ({ agree: false, difference: 15 })),
      noise,
      RULE,
    ).differs,
    false,
    "not before minComparisons",
  );
  t.equal(
    judgeField(
      many(40, (i) => (i < 2 ? { agree: false, difference: 1 } : { agree: true, difference: 0 })),
      noise,
      RULE,
    ).differs,
    false,
    "2 of 40 is not a finding with a 5% minimum difference",
  );
});

t.test("an exact field as noisy between two stable answers as with the candidate is noise", async (t) => {
  // A timestamp: every pair of answers differs, stable or not.
  const always = many(40, () => ({ agree: false }));
  const verdict = judgeField(always, always, RULE);
  t.equal(verdict.differs, false);
  t.equal(verdict.candidateRate, 1);
  t.equal(verdict.noiseRate, 1);
  // A label that flips in 30% of stable pairs, and in 90% of candidate pairs: beyond the noise.
  const flips = (share: number) => many(100, (i) => ({ agree: i >= share * 100 }));
  t.equal(judgeField(flips(0.3), flips(0.3), RULE).differs, false, "the same flip rate");
  t.equal(judgeField(flips(0.9), flips(0.3), RULE).differs, true, "far more flips than the noise");
});

t.test("a noisy number counts only beyond the noise's quantile of differences", async (t) => {
  // Stable answers jitter by up to ±0.05 (injected, deterministic): every pair disagrees exactly.
  const jitter = (i: number) => ((i * 37) % 11) / 100 - 0.05;
  const noise = many(200, (i) => ({ agree: jitter(i) === 0, difference: jitter(i) }));
  const sameModel = judgeField(
    many(200, (i) => ({ agree: jitter(i + 3) === 0, difference: jitter(i + 3) })),
    noise,
    RULE,
  );
  t.equal(sameModel.differs, false, "a candidate with the same jitter");
  t.equal(sameModel.noiseThreshold, 0.05, "the noise's 99th percentile of |difference|");
  const shifted = judgeField(
    many(200, (i) => ({ agree: false, difference: 0.2 + jitter(i) })),
    noise,
    RULE,
  );
  t.equal(shifted.differs, true, "shifted by 0.2, four times the noise");
  t.equal(shifted.candidateRate, 1);
  t.equal(
    judgeField(
      many(200, (i) => ({ agree: false, difference: jitter(i) * 0.9 })),
      noise,
      RULE,
    ).differs,
    false,
    "a candidate less noisy than the stable pool",
  );
});
