// Shadow comparison's arithmetic, pure: two answers compared field by field through the contract's
// fields (exact for enums, strings, booleans, lists and messages; a tolerance for numbers), the
// comparisons kept per field in a bounded window, and the rule that says a candidate's field
// differs only beyond the noise two answers of the stable pool to the same request show (Diffy's
// primary/secondary idea): a field that disagrees between two stable answers as often as between
// stable and candidate is non-deterministic, not changed.
import type { FieldKind, FieldSpec } from "../../contracts/fields.js";
import { valueAt } from "../../contracts/fields.js";
import type { Payload } from "../../contracts/payload.js";
import type { Confidence } from "./config.js";
import { wilsonLowerBound, wilsonUpperBound } from "./health.js";

export interface Tolerance {
  readonly absolute: number;
  readonly relative: number;
}

/** One field of one pair of answers. */
export interface FieldComparison {
  readonly agree: boolean;
  /**
   * For a numeric field present as a number in both: other − primary (of the payload pair that
   * differs most). Undefined otherwise: a missing value or a type change differs beyond any noise.
   */
  readonly difference?: number;
}

/** What an answer's payloads are compared by: the contract's fields and its wrap field. */
export interface AnswerFields {
  readonly specs: readonly FieldSpec[];
  /** The contract's wrapField: each payload is that field's value, not a message. */
  readonly wrap: string | undefined;
}

/** A number as proto JSON writes one: a JSON number, or a decimal string (64-bit integers). */
function numberOf(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (typeof value === "string" && /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(value)) return Number(value);
  return undefined;
}

/** JSON text with object keys sorted: equal values compare equal whatever their key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (typeof value === "object" && value !== null)
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`)
      .join(",")}}`;
  return JSON.stringify(value) ?? "undefined";
}

export function compareValues(kind: FieldKind, a: unknown, b: unknown, tolerance: Tolerance): FieldComparison {
  if (kind === "numeric") {
    const x = numberOf(a);
    const y = numberOf(b);
    if (x !== undefined && y !== undefined) {
      const difference = y - x;
      const allowed = tolerance.absolute + tolerance.relative * Math.max(Math.abs(x), Math.abs(y));
      return { agree: Math.abs(difference) <= allowed, difference };
    }
  }
  return { agree: canonical(a) === canonical(b) };
}

/**
 * Per field (in `fields.specs` order), how `other` compares with `primary`: payload i with payload
 * i; a field agrees when it agrees in every pair, and a payload only one answer has disagrees on
 * every field.
 */
export function compareAnswers(
  fields: AnswerFields,
  primary: readonly Payload[],
  other: readonly Payload[],
  tolerance: Tolerance,
): FieldComparison[] {
  const rootOf = (payload: Payload | undefined): unknown => {
    if (payload === undefined || !("value" in payload)) return undefined;
    return fields.wrap === undefined ? payload.value : { [fields.wrap]: payload.value };
  };
  const pairs = Math.max(primary.length, other.length);
  return fields.specs.map((spec) => {
    let agree = true;
    let difference: number | undefined;
    let numeric = spec.kind === "numeric";
    for (let index = 0; index < pairs; index++) {
      const a = primary[index];
      const b = other[index];
      if (a === undefined || b === undefined) {
        agree = false;
        numeric = false;
        continue;
      }
      const pair = compareValues(spec.kind, valueAt(rootOf(a), spec.keys), valueAt(rootOf(b), spec.keys), tolerance);
      agree &&= pair.agree;
      if (pair.difference === undefined) {
        if (!pair.agree) numeric = false;
      } else if (difference === undefined || Math.abs(pair.difference) > Math.abs(difference)) {
        difference = pair.difference;
      }
    }
    return numeric && difference !== undefined ? { agree, difference } : { agree };
  });
}

/** The latest `capacity` comparisons of one field, oldest dropped first. */
export class FieldWindow {
  readonly #capacity: number;
  readonly #samples: FieldComparison[] = [];
  #next = 0;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  add(sample: FieldComparison): void {
    if (this.#samples.length < this.#capacity) this.#samples.push(sample);
    else this.#samples[this.#next] = sample;
    this.#next = (this.#next + 1) % this.#capacity;
  }

  get samples(): readonly FieldComparison[] {
    return this.#samples;
  }
}

/** The `q` quantile of sorted values (nearest rank); undefined when there are none. */
export function quantile(sorted: readonly number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

/** What a window of one field's comparisons says. */
export interface FieldStats {
  readonly comparisons: number;
  readonly agreementRate: number;
  /** Numeric fields: the comparisons with a difference, its mean (signed: a bias) and |difference| quantiles. */
  readonly differences?: {
    readonly count: number;
    readonly mean: number;
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly max: number;
  };
}

export function fieldStats(samples: readonly FieldComparison[]): FieldStats {
  const comparisons = samples.length;
  const agreed = samples.filter((sample) => sample.agree).length;
  const signed = samples.flatMap((sample) => (sample.difference === undefined ? [] : [sample.difference]));
  const stats = { comparisons, agreementRate: comparisons === 0 ? 1 : agreed / comparisons };
  if (signed.length === 0) return stats;
  const sorted = signed.map(Math.abs).sort((a, b) => a - b);
  return {
    ...stats,
    differences: {
      count: signed.length,
      mean: signed.reduce((sum, value) => sum + value, 0) / signed.length,
      p50: quantile(sorted, 0.5) ?? 0,
      p90: quantile(sorted, 0.9) ?? 0,
      p99: quantile(sorted, 0.99) ?? 0,
      max: sorted[sorted.length - 1] ?? 0,
    },
  };
}

export interface NoiseRule {
  readonly noiseQuantile: number;
  readonly minComparisons: number;
  readonly confidence: Confidence;
  readonly minDifference: number;
}

export interface FieldVerdict {
  /** True when the candidate's field differs from the stable's beyond the noise, with confidence. */
  readonly differs: boolean;
  /** Numeric fields: the noise's |difference| at rule.noiseQuantile, below which a difference is noise. */
  readonly noiseThreshold: number;
  /** Shares of comparisons that differ beyond the noise threshold (or tolerance, or exactly). */
  readonly candidateRate: number;
  readonly noiseRate: number;
  /** The lower end of the candidate rate's Wilson interval, the upper end of the noise rate's. */
  readonly candidateLower: number;
  readonly noiseUpper: number;
}

/**
 * The noise-floor rule. A comparison differs when its values disagree (beyond the tolerance) and,
 * for a number, by more than `noiseQuantile` of the stable-vs-stable differences of the field. The
 * candidate's field differs when, with `minComparisons` of each, the lower end of the Wilson
 * interval of its rate of differing comparisons exceeds the upper end of the noise's rate by more
 * than `minDifference`. A deterministic field has a noise rate of 0 (any real change shows); a
 * field that differs between two stable answers as often as with the candidate never counts.
 */
export function judgeField(
  candidate: readonly FieldComparison[],
  noise: readonly FieldComparison[],
  rule: NoiseRule,
): FieldVerdict {
  const noiseDifferences = noise
    .flatMap((sample) => (sample.difference === undefined ? [] : [Math.abs(sample.difference)]))
    .sort((a, b) => a - b);
  const noiseThreshold = quantile(noiseDifferences, rule.noiseQuantile) ?? 0;
  const beyond = (sample: FieldComparison): boolean =>
    !sample.agree && (sample.difference === undefined || Math.abs(sample.difference) > noiseThreshold);
  const candidateBeyond = candidate.filter(beyond).length;
  const noiseBeyond = noise.filter(beyond).length;
  const candidateLower = wilsonLowerBound(candidateBeyond, candidate.length, rule.confidence);
  const noiseUpper = wilsonUpperBound(noiseBeyond, noise.length, rule.confidence);
  const enough = candidate.length >= rule.minComparisons && noise.length >= rule.minComparisons;
  return {
    differs: enough && candidateLower - noiseUpper > rule.minDifference,
    noiseThreshold,
    candidateRate: candidate.length === 0 ? 0 : candidateBeyond / candidate.length,
    noiseRate: noise.length === 0 ? 0 : noiseBeyond / noise.length,
    candidateLower,
    noiseUpper,
  };
}
