// A candidate's health: its answers since it was last judged healthy, counted, and the rule that
// calls it unhealthy only with confidence. A rate from few answers is uncertain (1 violation in 3
// answers is 33%, or 1%): the lower end of the Wilson score interval says how low the true rate can
// plausibly be, and only when even that is past the maximum is the candidate unhealthy.
import type { CanaryHealthConfig, Confidence } from "./config.js";

/** What one answer of a pool showed. */
export type AnswerKind = "ok" | "violated" | "error";

/** Counts of a candidate's answers since its window began. */
export interface HealthWindow {
  readonly answers: number;
  readonly violations: number;
  readonly errors: number;
}

export type HealthVerdict =
  | { readonly healthy: true }
  | {
      readonly healthy: false;
      readonly reason: "violations" | "errors";
      /** The observed rate and the lower bound that crossed the maximum. */
      readonly rate: number;
      readonly lowerBound: number;
      readonly max: number;
    };

export const EMPTY_WINDOW: HealthWindow = Object.freeze({ answers: 0, violations: 0, errors: 0 });

export function countAnswer(window: HealthWindow, kind: AnswerKind): HealthWindow {
  return {
    answers: window.answers + 1,
    violations: window.violations + (kind === "violated" ? 1 : 0),
    errors: window.errors + (kind === "error" ? 1 : 0),
  };
}

/** The answers of two windows together (this sidecar's and the other sidecars'). */
export function addWindows(a: HealthWindow, b: HealthWindow): HealthWindow {
  return { answers: a.answers + b.answers, violations: a.violations + b.violations, errors: a.errors + b.errors };
}

/** Two-sided confidence level → standard normal quantile z: the levels config offers. */
const Z: Readonly<Record<Confidence, number>> = { 0.9: 1.6448536, 0.95: 1.959964, 0.99: 2.5758293, 0.999: 3.2905267 };

/** The lower end of the Wilson score interval of `successes` in `trials` at two-sided `confidence`. */
export function wilsonLowerBound(successes: number, trials: number, confidence: Confidence): number {
  if (trials === 0) return 0;
  const { centre, spread, scale } = wilson(successes, trials, confidence);
  return Math.max(0, (centre - spread) / scale);
}

/** The upper end of the same interval: how high the true rate can plausibly be. */
export function wilsonUpperBound(successes: number, trials: number, confidence: Confidence): number {
  if (trials === 0) return 1;
  const { centre, spread, scale } = wilson(successes, trials, confidence);
  return Math.min(1, (centre + spread) / scale);
}

function wilson(successes: number, trials: number, confidence: Confidence) {
  const z = Z[confidence];
  const p = successes / trials;
  const z2 = z * z;
  return {
    centre: p + z2 / (2 * trials),
    spread: z * Math.sqrt((p * (1 - p)) / trials + z2 / (4 * trials * trials)),
    scale: 1 + z2 / trials,
  };
}

export function judge(window: HealthWindow, config: CanaryHealthConfig): HealthVerdict {
  if (window.answers < config.minRequests) return { healthy: true };
  const checks = [
    { reason: "violations" as const, count: window.violations, max: config.maxViolationRate },
    { reason: "errors" as const, count: window.errors, max: config.maxErrorRate },
  ];
  for (const { reason, count, max } of checks) {
    if (count < config.minEvents) continue;
    const lowerBound = wilsonLowerBound(count, window.answers, config.confidence);
    if (lowerBound > max) return { healthy: false, reason, rate: count / window.answers, lowerBound, max };
  }
  return { healthy: true };
}
