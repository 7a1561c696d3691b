// The complexity stage's first latency model, as it was at commit 9bb3938 (src/pipeline/complexity/
// model.ts), kept for `make bench-latency-model` to measure beside the current one on the same
// samples; its features and regressors are the current model's, which did not change.
//
// Online latency model: recursive least squares with exponential forgetting over a handful of
// request features. RLS gives the least-squares fit of all requests seen so far, weighted toward
// recent ones, for O(d²) work per request and no stored history; d is 6 here.
//
// Guards: observations that are not finite or not plausible are rejected; a-priori residuals
// beyond 4σ are clipped (one stalled upstream must not drag every coefficient); the covariance is
// kept symmetric and its variances bounded by their initial value (forgetting "winds up" the
// covariance along features that never vary, e.g. images on a text-only route, and the next
// request that has them would then swing the fit); and a state that still goes non-finite or
// loses positive definiteness is reset to the prior.
import type { ModelConfig } from "../src/pipeline/complexity/config.js";
import type { Features } from "../src/pipeline/complexity/features.js";
import {
  MODEL_FEATURES,
  type ModelFeature,
  priorCoefficients,
  regressors,
  type UpdateResult,
} from "../src/pipeline/complexity/model.js";

const DIMENSION = MODEL_FEATURES.length;

/** Prior coefficients are a belief worth about one request: the data takes over quickly. */
const INITIAL_COVARIANCE = 1e4;
const MAX_PLAUSIBLE_LATENCY_MS = 3_600_000;
const MIN_PREDICTION_MS = 1;
const RESIDUAL_CLIP_SIGMAS = 4;
const MIN_DENOMINATOR = 1e-9;
/**
 * Requests the residual variance remembers: shorter than the coefficients' memory, so the
 * gauge shows today's spread, and early errors of a young fit fade fast.
 */
const RESIDUAL_MEMORY = 100;

function dot(a: Float64Array, b: Float64Array): number {
  let sum = 0;
  for (let index = 0; index < a.length; index++) sum += (a[index] as number) * (b[index] as number);
  return sum;
}

function identityCovariance(): Float64Array {
  const covariance = new Float64Array(DIMENSION * DIMENSION);
  for (let index = 0; index < DIMENSION; index++) covariance[index * DIMENSION + index] = INITIAL_COVARIANCE;
  return covariance;
}

/**
 * Anti-windup: scales row and column i by √(limit / P_ii) wherever P_ii exceeds its initial value.
 * A congruence with a positive diagonal keeps P positive definite, and only the unexcited
 * directions are damped, so well-measured features keep forgetting at the configured rate.
 */
function boundVariances(covariance: Float64Array): void {
  const scale = new Float64Array(DIMENSION);
  for (let index = 0; index < DIMENSION; index++) {
    const variance = covariance[index * DIMENSION + index] as number;
    scale[index] = variance > INITIAL_COVARIANCE ? Math.sqrt(INITIAL_COVARIANCE / variance) : 1;
  }
  for (let row = 0; row < DIMENSION; row++) {
    for (let column = 0; column < DIMENSION; column++) {
      covariance[row * DIMENSION + column] =
        (covariance[row * DIMENSION + column] as number) * (scale[row] as number) * (scale[column] as number);
    }
  }
}

export class LatencyModel {
  readonly #prior: Float64Array;
  readonly #forgetting: number;
  readonly #minSamples: number;
  #theta: Float64Array;
  #covariance: Float64Array;
  #samples = 0;
  #residualVariance = 0;

  constructor(config: ModelConfig) {
    this.#prior = priorCoefficients(config);
    this.#forgetting = config.forgetting;
    this.#minSamples = config.minSamples;
    this.#theta = this.#prior.slice();
    this.#covariance = identityCovariance();
  }

  /** True once predictions come from the fitted coefficients instead of the prior. */
  get fitted(): boolean {
    return this.#samples >= this.#minSamples;
  }

  coefficients(): ReadonlyMap<ModelFeature, number> {
    return new Map(MODEL_FEATURES.map((name, index) => [name, this.#theta[index] as number]));
  }

  /** Predicted unloaded latency in ms: always finite and positive. */
  predict(features: Features): number {
    const x = regressors(features);
    const prior = Math.max(MIN_PREDICTION_MS, dot(this.#prior, x));
    if (!this.fitted) return Number.isFinite(prior) ? prior : MAX_PLAUSIBLE_LATENCY_MS;
    const fitted = dot(this.#theta, x);
    // A fit that extrapolates below zero is wrong for this request; the prior is a better guess.
    if (!Number.isFinite(fitted) || fitted < MIN_PREDICTION_MS)
      return Number.isFinite(prior) ? prior : MAX_PLAUSIBLE_LATENCY_MS;
    return fitted;
  }

  update(features: Features, observedMs: number): UpdateResult {
    if (!Number.isFinite(observedMs) || observedMs < 0 || observedMs > MAX_PLAUSIBLE_LATENCY_MS) return "rejected";
    const x = regressors(features);
    if (!x.every(Number.isFinite)) return "rejected";
    const covariance = this.#covariance;
    const px = new Float64Array(DIMENSION);
    for (let row = 0; row < DIMENSION; row++) {
      let sum = 0;
      for (let column = 0; column < DIMENSION; column++)
        sum += (covariance[row * DIMENSION + column] as number) * (x[column] as number);
      px[row] = sum;
    }
    const denominator = this.#forgetting + dot(x, px);
    if (!Number.isFinite(denominator) || denominator < MIN_DENOMINATOR) return "rejected";

    let residual = observedMs - dot(this.#theta, x);
    if (this.#samples >= this.#minSamples && this.#residualVariance > 0) {
      const limit = RESIDUAL_CLIP_SIGMAS * Math.sqrt(this.#residualVariance);
      residual = Math.max(-limit, Math.min(limit, residual));
    }
    const theta = this.#theta.slice();
    for (let index = 0; index < DIMENSION; index++)
      theta[index] = (theta[index] as number) + ((px[index] as number) / denominator) * residual;

    const next = new Float64Array(DIMENSION * DIMENSION);
    for (let row = 0; row < DIMENSION; row++) {
      for (let column = row; column < DIMENSION; column++) {
        const value =
          ((covariance[row * DIMENSION + column] as number) -
            ((px[row] as number) * (px[column] as number)) / denominator) /
          this.#forgetting;
        next[row * DIMENSION + column] = value;
        next[column * DIMENSION + row] = value;
      }
    }
    boundVariances(next);

    const weight = Math.max(1 / (this.#samples + 1), 1 / RESIDUAL_MEMORY);
    const variance = (1 - weight) * this.#residualVariance + weight * residual * residual;
    if (
      !theta.every(Number.isFinite) ||
      !next.every(Number.isFinite) ||
      !this.#positiveDiagonal(next) ||
      !Number.isFinite(variance)
    ) {
      this.#theta = this.#prior.slice();
      this.#covariance = identityCovariance();
      this.#samples = 0;
      this.#residualVariance = 0;
      return "reset";
    }
    this.#samples++;
    this.#theta = theta;
    this.#covariance = next;
    this.#residualVariance = variance;
    return "fitted";
  }

  #positiveDiagonal(covariance: Float64Array): boolean {
    for (let index = 0; index < DIMENSION; index++)
      if (!((covariance[index * DIMENSION + index] as number) > 0)) return false;
    return true;
  }
}
