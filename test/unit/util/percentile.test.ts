import t from "tap";
import { percentile } from "../../../src/util/percentile.js";

t.test("nearest rank: a measured value, the smallest with the share at or below it", async (t) => {
  const values = Array.from({ length: 1000 }, (_, i) => i + 1);
  t.equal(percentile(values, 0.5), 500);
  t.equal(percentile(values, 0.99), 990);
  t.equal(percentile(values, 0.999), 999);
  t.equal(percentile(values, 1), 1000);
  t.equal(percentile([1, 2, 3, 4], 0.5), 2, "no interpolation between 2 and 3");
  t.equal(percentile([1, 2, 3, 4], 0.51), 3);
});

t.test("ranks at 0 and 100 are the minimum and the maximum; one sample is every percentile", async (t) => {
  t.equal(percentile([5, 3, 9], 0), 3);
  t.equal(percentile([5, 3, 9], 1), 9);
  t.equal(percentile([7], 0), 7);
  t.equal(percentile([7], 0.999), 7);
});

t.test("floating-point products that land just above an integer keep their rank", async (t) => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  for (const share of [0.07, 0.14, 0.28, 0.29, 0.55, 0.57, 0.58]) {
    t.equal(percentile(hundred, share), Math.round(share * 100), `p${Math.round(share * 100)}`);
  }
});

t.test("samples in any order; the caller's array is left as it was", async (t) => {
  const samples = [30, 10, 20];
  t.equal(percentile(samples, 0.5), 20);
  t.same(samples, [30, 10, 20]);
});

t.test("no samples: undefined; a share outside 0..1 is a caller bug", async (t) => {
  t.equal(percentile([], 0.5), undefined);
  t.throws(() => percentile([1], 99), RangeError);
  t.throws(() => percentile([1], -0.1), RangeError);
  t.throws(() => percentile([1], Number.NaN), RangeError);
});
