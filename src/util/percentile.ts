/**
 * Nearest-rank percentile: the smallest sample with at least a share `q` (0 to 1) of all samples at
 * or below it. Every value reported was measured (no interpolation between two latencies), q = 0
 * is the minimum and q = 1 the maximum. Samples may come in any order; undefined when there are none.
 */
export function percentile(samples: readonly number[], q: number): number | undefined {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`percentile share must be from 0 to 1, got ${q}`);
  if (samples.length === 0) return undefined;
  const ascending = [...samples].sort((a, b) => a - b);
  // 0.07 × 100 is 7.000000000000001 in floating point; without the nudge that ceils to rank 8.
  const rank = Math.ceil(q * ascending.length - Number.EPSILON * ascending.length);
  return ascending[Math.min(ascending.length, Math.max(1, rank)) - 1];
}
