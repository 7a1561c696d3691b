import t, { type Test } from "tap";
import { FrequencyTable } from "../../../../src/pipeline/drift/frequency.js";
import {
  alignedShares,
  decileShares,
  jsDistance,
  normalisedWasserstein,
  psi,
  SHARE_FLOOR,
} from "../../../../src/pipeline/drift/scores.js";
import { QuantileSketch } from "../../../../src/pipeline/drift/sketch.js";

function close(t: Test, actual: number, expected: number, tolerance: number, what: string): void {
  t.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} ≈ ${expected}`);
}

function sketchOf(values: readonly number[]): QuantileSketch {
  const sketch = new QuantileSketch({ relativeAccuracy: 0.01 });
  for (const value of values) sketch.add(value);
  return sketch;
}

const repeat = (value: number, times: number): number[] => Array.from({ length: times }, () => value);

t.test("PSI against hand-computed values", async (t) => {
  // (0.5 − 0.25)·ln(0.5/0.25) + (0.5 − 0.75)·ln(0.5/0.75) = 0.173287 + 0.101366
  close(t, psi([0.5, 0.5], [0.25, 0.75]), 0.274653, 1e-6, "two bins");
  t.equal(psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]), 0, "equal shares");
  // A category the baseline never had: its share is floored, (0.1 − 1e-4)·ln(0.1/1e-4) + (0.9 − 1)·ln(0.9)
  const expected = (0.1 - SHARE_FLOOR) * Math.log(0.1 / SHARE_FLOOR) + (0.9 - 1) * Math.log(0.9);
  close(t, psi([0.9, 0.1], [1, 0]), expected, 1e-9, "new category");
  close(t, expected, 0.6999, 1e-3, "…which is 0.6999");
});

t.test("Jensen–Shannon distance against hand-computed values", async (t) => {
  // m = (0.375, 0.625); KL(p‖m) = 0.0465545, KL(q‖m) = 0.0510349; √(½·(sum)) = 0.220896
  close(t, jsDistance([0.5, 0.5], [0.25, 0.75]), 0.220896, 1e-5, "two bins");
  t.equal(jsDistance([1, 0], [0, 1]), 1, "disjoint");
  t.equal(jsDistance([0.3, 0.7], [0.3, 0.7]), 0, "equal");
});

t.test("shares of two tables are aligned over the union of their values", async (t) => {
  const version = new FrequencyTable(8);
  const baseline = new FrequencyTable(8);
  for (const value of ["POSITIVE", "POSITIVE", "NEUTRAL", "NEGATIVE"]) version.add(value);
  for (const value of ["POSITIVE", "NEGATIVE"]) baseline.add(value);
  const [mine, theirs] = alignedShares(version, baseline);
  t.same(mine, [0.5, 0.25, 0.25], "baseline's values first, then the version's new ones");
  t.same(theirs, [0.5, 0.5, 0]);
});

t.test("numeric PSI bins at the baseline's deciles; equal edges merge", async (t) => {
  const baseline = sketchOf(Array.from({ length: 1000 }, (_, i) => i + 1));
  const [mine, theirs] = decileShares(baseline, baseline);
  t.equal(theirs.length, 10);
  t.same(mine, theirs);
  // Buckets 2 % wide around 100–1000 move a few values across an edge.
  for (const share of theirs) close(t, share, 0.1, 0.02, "a decile");
  const constant = sketchOf(repeat(5, 300));
  const [shifted, flat] = decileShares(sketchOf(repeat(9, 300)), constant);
  t.same(flat, [1, 0], "a constant baseline has one edge, two bins");
  t.same(shifted, [0, 1]);
  close(t, psi(shifted, flat), 2 * (1 - SHARE_FLOOR) * Math.log(1 / SHARE_FLOOR), 1e-9, "all mass moved");
});

t.test("normalised Wasserstein distance against hand-computed values", async (t) => {
  const baseline = sketchOf([...repeat(10, 100), ...repeat(20, 100)]);
  // Quantile functions differ by 10 on half of [0, 1]: area 5; the baseline's 5–95 % range is 10.
  close(t, normalisedWasserstein(sketchOf(repeat(20, 200)), baseline), 0.5, 0.02, "half the mass moved by the range");
  t.equal(normalisedWasserstein(baseline, baseline), 0, "a distribution from itself");
  // A constant baseline is measured against its median: |4 − 2| / 2.
  close(t, normalisedWasserstein(sketchOf(repeat(4, 50)), sketchOf(repeat(2, 50))), 1, 0.03, "constant baseline");
});
