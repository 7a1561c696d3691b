import t from "tap";
import { NonNegativeQuadratic } from "../../../../src/pipeline/complexity/bounded-qp.js";
import { gaussian, seededRandom } from "./fixtures.js";

const N = 6;

/** H = XᵀX + δI from random columns, some of them nearly copies of another (collinear features). */
function problem(random: () => number, collinear: boolean): { h: Float64Array; g: Float64Array } {
  const rows = 40;
  const x: number[][] = [];
  for (let row = 0; row < rows; row++) {
    const values = Array.from({ length: N }, () => gaussian(random) * 10 ** (3 * random() - 1));
    if (collinear) values[2] = 2 * (values[1] as number) + 1e-6 * gaussian(random);
    x.push(values);
  }
  const h = new Float64Array(N * N);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) {
      let sum = 0;
      for (const values of x) sum += (values[i] as number) * (values[j] as number);
      h[i * N + j] = sum;
    }
    h[i * N + i] = (h[i * N + i] as number) * (1 + 1e-6) + 1e-9;
  }
  const g = Float64Array.from({ length: N }, () => gaussian(random) * 10 ** (3 * random()));
  return { h, g };
}

function objective(h: Float64Array, g: Float64Array, theta: Float64Array): number {
  let value = 0;
  for (let i = 0; i < N; i++) {
    value -= (g[i] as number) * (theta[i] as number);
    for (let j = 0; j < N; j++) value += 0.5 * (theta[i] as number) * (h[i * N + j] as number) * (theta[j] as number);
  }
  return value;
}

/** KKT of min ½θᵀHθ − gᵀθ, θ ≥ 0, checked on the unit-diagonal scale: θ ≥ 0, ∇ ≥ 0 at the bound, ∇ = 0 when free. */
function kktViolation(h: Float64Array, g: Float64Array, theta: Float64Array): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < N; i++) scale = Math.max(scale, Math.abs(g[i] as number) / Math.sqrt(h[i * N + i] as number));
  for (let i = 0; i < N; i++) {
    let gradient = -(g[i] as number);
    for (let j = 0; j < N; j++) gradient += (h[i * N + j] as number) * (theta[j] as number);
    const scaled = gradient / Math.sqrt(h[i * N + i] as number) / scale;
    if ((theta[i] as number) < 0) worst = Math.max(worst, 1);
    else if ((theta[i] as number) === 0) worst = Math.max(worst, -scaled);
    else worst = Math.max(worst, Math.abs(scaled));
  }
  return worst;
}

t.test("solves random bounded problems exactly (KKT), collinear ones included", async (t) => {
  const random = seededRandom(3);
  const shared = new NonNegativeQuadratic(N);
  let bound = 0;
  let solved = 0;
  const trials = 400;
  for (let trial = 0; trial < trials; trial++) {
    const { h, g } = problem(random, trial % 2 === 1);
    const theta = new Float64Array(N);
    if (shared.solve(h, g, theta)) solved++;
    const violation = kktViolation(h, g, theta);
    if (!(violation < 1e-6)) t.fail(`trial ${trial}: KKT violated by ${violation}`);
    bound += theta.filter((value) => value === 0).length;
    // A fresh solver (no warm start) finds the same minimum.
    const fresh = new Float64Array(N);
    new NonNegativeQuadratic(N).solve(h, g, fresh);
    const a = objective(h, g, theta);
    const b = objective(h, g, fresh);
    if (!(Math.abs(a - b) <= 1e-8 * Math.max(1, Math.abs(a)))) t.fail(`trial ${trial}: warm ${a} vs cold ${b}`);
  }
  t.equal(solved, trials);
  t.ok(bound > 100, `the bounds were active (${bound} coefficients at 0)`);
});

t.test("an unconstrained minimum inside the region is returned as is", async (t) => {
  const h = new Float64Array(N * N);
  for (let i = 0; i < N; i++) h[i * N + i] = i + 1;
  const g = Float64Array.from({ length: N }, (_, i) => 2 * (i + 1));
  const theta = new Float64Array(N);
  t.ok(new NonNegativeQuadratic(N).solve(h, g, theta));
  t.ok(
    theta.every((value) => Math.abs(value - 2) < 1e-12),
    `${theta}`,
  );
});

t.test("zero targets: coefficients with nothing to gain stay at 0, never NaN", async (t) => {
  // A feature never seen and a prior coefficient of 0: its row is its penalty alone and its g is 0.
  const h = new Float64Array(N * N);
  for (let i = 0; i < N; i++) h[i * N + i] = 1e-12;
  h[0] = 4;
  h[1] = h[N] = 2;
  h[N + 1] = 1.000001;
  const g = Float64Array.of(2, 1, 0, 0, 0, 0);
  const solver = new NonNegativeQuadratic(N);
  const theta = new Float64Array(N);
  for (let round = 0; round < 3; round++) {
    t.ok(solver.solve(h, g, theta), `round ${round}`);
    t.ok(theta.every(Number.isFinite), `${theta}`);
    t.ok(kktViolation(h, g, theta) < 1e-6);
  }
});

t.test("refuses systems it cannot solve, leaving the output untouched", async (t) => {
  const solver = new NonNegativeQuadratic(2);
  const theta = Float64Array.of(7, 7);
  t.notOk(solver.solve(Float64Array.of(0, 0, 0, 1), Float64Array.of(1, 1), theta), "zero diagonal");
  t.notOk(solver.solve(Float64Array.of(1, 0, 0, Number.NaN), Float64Array.of(1, 1), theta), "NaN");
  t.notOk(solver.solve(Float64Array.of(1, 0, 0, 1), Float64Array.of(Number.POSITIVE_INFINITY, 1), theta), "infinite g");
  t.notOk(solver.solve(Float64Array.of(1, 2, 2, 1), Float64Array.of(1, 1), theta), "indefinite");
  t.same([...theta], [7, 7]);
});
