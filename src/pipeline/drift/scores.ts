// Distances between a version's distribution and its baseline's, as pure functions of shares and
// sketches (docs/drift.md gives the formulas; the unit tests check them against hand-computed values).
import type { FrequencyTable } from "./frequency.js";
import type { QuantileSketch } from "./sketch.js";

/**
 * A share of 0 would make PSI infinite (a category one side never gave): shares are floored
 * at this, the usual practice, so one new label in a few hundred answers scores a few hundredths.
 */
export const SHARE_FLOOR = 1e-4;

/** Population stability index: Σ (p − q) · ln(p / q) over aligned shares, p the version's, q the baseline's. */
export function psi(version: readonly number[], baseline: readonly number[]): number {
  let sum = 0;
  for (let i = 0; i < version.length; i++) {
    const p = Math.max(version[i] ?? 0, SHARE_FLOOR);
    const q = Math.max(baseline[i] ?? 0, SHARE_FLOOR);
    sum += (p - q) * Math.log(p / q);
  }
  return sum;
}

/** Jensen–Shannon distance (the square root of the divergence), base 2: 0 for equal shares, 1 for disjoint ones. */
export function jsDistance(version: readonly number[], baseline: readonly number[]): number {
  let divergence = 0;
  for (let i = 0; i < version.length; i++) {
    const p = version[i] ?? 0;
    const q = baseline[i] ?? 0;
    const m = (p + q) / 2;
    if (p > 0) divergence += (p / 2) * Math.log2(p / m);
    if (q > 0) divergence += (q / 2) * Math.log2(q / m);
  }
  return Math.sqrt(Math.max(0, divergence));
}

/** Both tables' shares over the union of their values, in one order. */
export function alignedShares(version: FrequencyTable, baseline: FrequencyTable): [number[], number[]] {
  const values = new Set([...baseline.values(), ...version.values()]);
  const mine: number[] = [];
  const theirs: number[] = [];
  for (const value of values) {
    mine.push(version.total === 0 ? 0 : version.count(value) / version.total);
    theirs.push(baseline.total === 0 ? 0 : baseline.count(value) / baseline.total);
  }
  return [mine, theirs];
}

const DECILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/**
 * Both sketches' shares in the bins cut at the baseline's deciles (equal edges merged, so a
 * baseline with few distinct values gets fewer bins): PSI's usual binning of a numeric field.
 */
export function decileShares(version: QuantileSketch, baseline: QuantileSketch): [number[], number[]] {
  const edges = [...new Set(baseline.quantiles(DECILES))];
  return [binShares(version, edges), binShares(baseline, edges)];
}

function binShares(sketch: QuantileSketch, edges: readonly number[]): number[] {
  const shares: number[] = [];
  let below = 0;
  for (const edge of edges) {
    const atOrBelow = sketch.shareAtOrBelow(edge);
    shares.push(atOrBelow - below);
    below = atOrBelow;
  }
  shares.push(1 - below);
  return shares;
}

/** Quantiles the Wasserstein distance is integrated over: the midpoints of 50 equal slices. */
const GRID = Array.from({ length: 50 }, (_, i) => (i + 0.5) / 50);

/**
 * Wasserstein-1 distance (the area between the two quantile functions), divided by the
 * baseline's 5–95 % range so it reads the same for scores in [0, 1] and token counts; a baseline
 * without spread is measured against its median's size instead (or 1 at zero).
 */
export function normalisedWasserstein(version: QuantileSketch, baseline: QuantileSketch): number {
  const mine = version.quantiles(GRID);
  const theirs = baseline.quantiles(GRID);
  let area = 0;
  for (let i = 0; i < GRID.length; i++) area += Math.abs((mine[i] ?? 0) - (theirs[i] ?? 0));
  area /= GRID.length;
  const [low = 0, median = 0, high = 0] = baseline.quantiles([0.05, 0.5, 0.95]);
  const scale = high - low > 0 ? high - low : Math.abs(median) > 0 ? Math.abs(median) : 1;
  return area / scale;
}
