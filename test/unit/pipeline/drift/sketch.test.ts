import t from "tap";
import { FrequencyTable, OTHER_CATEGORY } from "../../../../src/pipeline/drift/frequency.js";
import { MAX_MAGNITUDE, QuantileSketch } from "../../../../src/pipeline/drift/sketch.js";

const OPTIONS = { relativeAccuracy: 0.02 };

function sketchOf(values: readonly number[], options = OPTIONS): QuantileSketch {
  const sketch = new QuantileSketch(options);
  for (const value of values) sketch.add(value);
  return sketch;
}

function exactVariance(values: readonly number[]): number {
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
  return values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / values.length;
}

const QS = [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1];

t.test("quantiles are within the relative accuracy of the exact ones", async (t) => {
  const values = Array.from({ length: 1000 }, (_, i) => (i + 1) / 10);
  const sketch = sketchOf(values);
  const [, p05, , median, , p95] = sketch.quantiles(QS);
  t.ok(Math.abs((median ?? 0) / 50 - 1) <= 0.021, `median ${median}`);
  t.ok(Math.abs((p05 ?? 0) / 5 - 1) <= 0.03, `p05 ${p05}`);
  t.ok(Math.abs((p95 ?? 0) / 95 - 1) <= 0.021, `p95 ${p95}`);
  t.equal(sketch.shareAtOrBelow(1e9), 1);
  t.equal(sketch.shareAtOrBelow(-1), 0);
  t.ok(Math.abs(sketch.shareAtOrBelow(50) - 0.5) < 0.02);
  t.ok(Math.abs(sketch.variance - exactVariance(values)) < 1e-6, "the variance is exact (Welford)");
  t.same(new QuantileSketch(OPTIONS).quantiles([0.5]), [Number.NaN], "an empty sketch has no quantiles");
});

t.test("two merged sketches equal one sketch of all values, negative values and zeros included", async (t) => {
  const left = [-3, -2.5, 0, 0.01, 4, 100, -0.2];
  const right = [-7, 0, 2, 2, 3.5, 1e6, -1e-3];
  const merged = sketchOf(left);
  merged.merge(sketchOf(right));
  const whole = sketchOf([...left, ...right]);
  t.equal(merged.count, 14);
  t.same(merged.quantiles(QS), whole.quantiles(QS), "same quantiles (the library alone drops the negative store)");
  t.ok(Math.abs(merged.variance - exactVariance([...left, ...right])) < 1e-3, "Chan's merge of the variance");
  t.equal(merged.modeShare(), whole.modeShare());
  const intoEmpty = new QuantileSketch(OPTIONS);
  intoEmpty.merge(sketchOf(left));
  t.same(intoEmpty.quantiles(QS), sketchOf(left).quantiles(QS), "merging into an empty sketch copies it");
});

t.test("a sketch survives JSON and merges after it", async (t) => {
  const values = [-5, -1, 0, 0, 0.3, 0.98, 0.98, 0.98, 12, 400];
  const sketch = sketchOf(values);
  const restored = QuantileSketch.fromJSON(JSON.parse(JSON.stringify(sketch)));
  t.same(restored.quantiles(QS), sketch.quantiles(QS));
  t.equal(restored.count, 10);
  t.equal(restored.variance, sketch.variance);
  t.equal(restored.modeShare(), 0.3, "three of ten values share the 0.98 bucket");
  restored.merge(sketchOf([1, 2]));
  t.equal(restored.count, 12);
  const empty = QuantileSketch.fromJSON(JSON.parse(JSON.stringify(new QuantileSketch(OPTIONS))));
  t.equal(empty.count, 0, "an empty sketch round-trips (no ±Infinity in the JSON)");
});

t.test("memory is bounded: values are clamped to 21 decades, so a store spans at most 1 210 buckets", async (t) => {
  const sketch = new QuantileSketch({ relativeAccuracy: 0.02 });
  for (let step = -4000; step <= 4000; step++) {
    sketch.add(10 ** (step / 100));
    sketch.add(-(10 ** (step / 100)));
  }
  const serialised = sketch.toJSON();
  t.ok(serialised.positive.length <= 1210, `${serialised.positive.length} positive buckets`);
  t.ok(serialised.negative.length <= 1210, `${serialised.negative.length} negative buckets`);
  const [bottom = 0, top = 0] = sketch.quantiles([0, 1]);
  t.ok(Math.abs(top / MAX_MAGNITUDE - 1) < 0.03, `larger values count at the bound: ${top}`);
  t.ok(Math.abs(bottom / -MAX_MAGNITUDE - 1) < 0.03, `and so do large negative ones: ${bottom}`);
  t.equal(serialised.count, 16002);
  t.ok(serialised.zeros > 0, "magnitudes below MIN_MAGNITUDE are zero");
});

t.test("a frequency table is bounded, merges and round-trips", async (t) => {
  const table = new FrequencyTable(2);
  for (const value of ["a", "b", "a", "c", "d"]) table.add(value);
  t.equal(table.count("a"), 2);
  t.equal(table.count(OTHER_CATEGORY), 2, "values past the cap count as other");
  t.equal(table.modeShare(), 0.4);
  const other = FrequencyTable.fromJSON(JSON.parse(JSON.stringify(table)));
  other.merge(table);
  t.equal(other.total, 10);
  t.equal(other.count("b"), 2);
});
