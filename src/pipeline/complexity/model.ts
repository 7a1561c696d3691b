// Online latency model: the request's unloaded upstream latency as a non-negative linear function of
// a handful of request features, refitted after every completed request.
//
// Its first version, recursive least squares, fitted live traffic badly: an intercept of −1377 ms
// on a route whose output tokens moved with its prompts. Least squares has nothing to say along
// directions the traffic does not excite (features that move together, features that never vary,
// a feature that is nearly constant and so the intercept's twin); there the recursive estimate
// stays wherever its start and the noise left it, and it compensates one coefficient with another,
// negative ones included. This version:
//
// - keeps exponentially forgotten sufficient statistics (A = Σ λᵏ w x xᵀ, b = Σ λᵏ w x y, the count
//   Σ λᵏ) and solves the bounded, regularised problem exactly after each update, rather than a
//   recursive estimate no constraint can be projected onto;
// - fits relative errors: a sample weighs 1/max(y, ŷ)² (observed, and predicted before the
//   update), so a 50 ms request counts as much as a 5 s one and the loss is the squared relative
//   error, the quantity timeouts and admission care about. Relative to the larger of the two, a
//   sample's relative residual stays within (−1, 1): a noisy fast sample is not amplified, and one
//   slowed down 5× by load or a stall weighs as a relative error of 0.8 (an unweighted fit would
//   take its whole excess), so the fit stays near the latency of requests that were not held up;
// - regularises toward the prior: a ridge penalty on θ − c, normalised by each feature's own scale
//   (its weighted mean square in the sample, so the penalty is worth `priorWeight` average
//   requests whatever the feature's unit, and the system is well conditioned). The centre c is the
//   configured prior rescaled to this upstream, c = k·prior, with k the least-squares ratio of the
//   observed latency to the prior's prediction: the prior's shape, the data's magnitude (a prior
//   tuned for an LLM is ~100× off for a fast model, and a fixed centre would then pull the
//   intercept negative). Where the data varies the penalty is negligible; where it does not
//   (collinear or unused features) the coefficients stay at the rescaled prior instead of drifting;
// - bounds every coefficient to ≥ 0 (no per-unit cost is negative, nor the intercept), and lifts
//   every fitted prediction to the route's unloaded floor: the smallest latency observed among the
//   last 500–1000 requests.
//
// Guards: observations that are not finite or not plausible are rejected; a sample's influence is
// bounded by the relative weighting above; and a state that still goes non-finite, or a system the
// solver cannot solve, is reset to the prior. Per update: O(d²) for the statistics and, usually, one
// 6×6 Cholesky solve (bounded-qp.ts); no stored history.
import { NonNegativeQuadratic } from "./bounded-qp.js";
import type { ModelConfig } from "./config.js";
import type { Features } from "./features.js";

/** Regressors, in natural units sized so coefficients are comparable (ms per unit). */
export const MODEL_FEATURES = [
  "intercept",
  "input_ktokens",
  "output_ktokens",
  "images",
  "tensor_mb",
  "other_mb",
] as const;
export type ModelFeature = (typeof MODEL_FEATURES)[number];
const DIMENSION = MODEL_FEATURES.length;

const MAX_PLAUSIBLE_LATENCY_MS = 3_600_000;
/** Every prediction is at least this: finite, positive, and below any real upstream's latency. */
const MIN_PREDICTION_MS = 0.1;
/**
 * Requests the residual statistics remember: shorter than the coefficients' memory, so the gauge
 * shows today's spread, and early errors of a young fit fade fast.
 */
const RESIDUAL_MEMORY = 100;
/**
 * The unloaded floor is the smallest latency among the last FLOOR_WINDOW to 2·FLOOR_WINDOW requests:
 * long enough that a route's smallest requests, even when rare, are in it (otherwise the floor would
 * be a typical request's latency and lift the small ones' predictions to it), short enough that it
 * follows an upstream that became faster within minutes of traffic.
 */
const FLOOR_WINDOW = 500;
/** A feature never seen still gets a penalty this small (relative to the intercept's), so H stays definite. */
const UNSEEN_SCALE = 1e-9;
/**
 * A feature that never varies (the intercept's twin) is penalised as if its spread were this share
 * of its mean square: the system stays well conditioned (≤ ~10⁶), and the split between it and the
 * intercept stays at the prior's.
 */
const MIN_SPREAD = 1e-6;
/** The prior's rescaling factor k stays within these bounds (a 10⁴× faster or slower upstream). */
const MIN_PRIOR_SCALE = 1e-4;
const MAX_PRIOR_SCALE = 1e4;
/** Forgotten statistics below this are zero: no denormals after a feature stopped appearing long ago. */
const NEGLIGIBLE = 1e-250;

export type UpdateResult = "fitted" | "rejected" | "reset";

export function regressors(features: Features): Float64Array {
  return Float64Array.of(
    1,
    (features.inputTokens + features.toolTokens + features.imageTokens) / 1000,
    features.outputTokens / 1000,
    features.images,
    features.tensorBytes / 1e6,
    features.otherBytes / 1e6,
  );
}

/** The configured prior's coefficients, in MODEL_FEATURES order. */
export function priorCoefficients({ prior }: ModelConfig): Float64Array {
  return Float64Array.of(
    prior.baseMs,
    prior.msPerInputKToken,
    prior.msPerOutputKToken,
    prior.msPerImage,
    prior.msPerTensorMB,
    prior.msPerOtherMB,
  );
}

function dot(a: Float64Array, b: Float64Array): number {
  let sum = 0;
  for (let index = 0; index < a.length; index++) sum += (a[index] as number) * (b[index] as number);
  return sum;
}

export class LatencyModel {
  readonly #prior: Float64Array;
  readonly #forgetting: number;
  readonly #minSamples: number;
  readonly #priorWeight: number;
  /** Σ λᵏ w x xᵀ (row-major), Σ λᵏ w x y, Σ λᵏ: the forgotten, weighted sample. */
  #gram = new Float64Array(DIMENSION * DIMENSION);
  #moment = new Float64Array(DIMENSION);
  #count = 0;
  /** The penalised system solved after each update (H = A + diag ρ, g = b + ρ·c) and its solver. */
  readonly #system = new Float64Array(DIMENSION * DIMENSION);
  readonly #target = new Float64Array(DIMENSION);
  readonly #solver = new NonNegativeQuadratic(DIMENSION);
  #theta: Float64Array;
  #samples = 0;
  #residualVariance = 0;
  #floorCurrent = Number.POSITIVE_INFINITY;
  #floorPrevious = Number.POSITIVE_INFINITY;
  #floorCount = 0;

  constructor(config: ModelConfig) {
    this.#prior = priorCoefficients(config);
    this.#forgetting = config.forgetting;
    this.#minSamples = config.minSamples;
    this.#priorWeight = config.priorWeight;
    this.#theta = this.#prior.slice();
  }

  /** Completed requests the model learned from. */
  get samples(): number {
    return this.#samples;
  }

  /** True once predictions come from the fitted coefficients instead of the prior. */
  get fitted(): boolean {
    return this.#samples >= this.#minSamples;
  }

  /** Mean squared a-priori residual over roughly the last RESIDUAL_MEMORY requests, in ms². */
  get residualVariance(): number {
    return this.#residualVariance;
  }

  /** The smallest latency among the last 500–1000 requests (ms): no fitted prediction is below it. */
  get floor(): number {
    const floor = Math.min(this.#floorPrevious, this.#floorCurrent);
    return Number.isFinite(floor) ? floor : 0;
  }

  coefficients(): ReadonlyMap<ModelFeature, number> {
    return new Map(MODEL_FEATURES.map((name, index) => [name, this.#theta[index] as number]));
  }

  /** Predicted unloaded latency in ms: always finite and positive, and once fitted never below the floor. */
  predict(features: Features): number {
    const x = regressors(features);
    if (!this.fitted) return this.#bounded(dot(this.#prior, x));
    return this.#estimate(x);
  }

  update(features: Features, observedMs: number): UpdateResult {
    if (!Number.isFinite(observedMs) || observedMs < 0 || observedMs > MAX_PLAUSIBLE_LATENCY_MS) return "rejected";
    const x = regressors(features);
    if (!x.every(Number.isFinite)) return "rejected";

    // A-priori prediction of the current fit (the prior's coefficients before any sample).
    const predicted = this.#estimate(x);
    // Relative to the larger of the observed and the predicted latency: the relative residual is
    // within (−1, 1), a noisy fast sample is not amplified, and a slow one counts as a smaller
    // relative error than its excess (5× slower than predicted: 0.8).
    const reference = Math.max(observedMs, predicted, MIN_PREDICTION_MS);
    const weight = 1 / (reference * reference);

    // In place: a state that cannot be solved is reset, so nothing needs rolling back.
    const gram = this.#gram;
    const moment = this.#moment;
    const lambda = this.#forgetting;
    for (let row = 0; row < DIMENSION; row++) {
      const xRow = x[row] as number;
      moment[row] = forget(lambda * (moment[row] as number)) + weight * xRow * observedMs;
      for (let column = 0; column < DIMENSION; column++) {
        const index = row * DIMENSION + column;
        gram[index] = forget(lambda * (gram[index] as number)) + weight * xRow * (x[column] as number);
      }
    }
    this.#count = lambda * this.#count + 1;

    const memory = Math.max(1 / (this.#samples + 1), 1 / RESIDUAL_MEMORY);
    const residual = observedMs - predicted;
    const variance = (1 - memory) * this.#residualVariance + memory * residual * residual;
    if (!this.#solve() || !Number.isFinite(variance)) {
      this.#reset();
      return "reset";
    }
    this.#samples++;
    this.#residualVariance = variance;
    this.#observeFloor(observedMs);
    return "fitted";
  }

  /**
   * The bounded ridge solution: argmin over θ ≥ 0 of Σ λᵏ w (y − θx)² + Σⱼ ρⱼ (θⱼ − cⱼ)², where
   * ρⱼ = priorWeight · Sⱼ / count, Sⱼ the feature's weighted spread in the sample (the weight sum for
   * the intercept): a penalty worth priorWeight average requests whatever the feature's unit; and
   * c = k · prior.
   */
  #solve(): boolean {
    const prior = this.#prior;
    const gram = this.#gram;
    const moment = this.#moment;
    // k: weighted least-squares ratio of the observed latency to the prior's prediction (q = prior·x):
    // Σ w y q / Σ w q² = priorᵀb / priorᵀA prior.
    let priorMoment = 0;
    let priorGram = 0;
    for (let row = 0; row < DIMENSION; row++) {
      priorMoment += (prior[row] as number) * (moment[row] as number);
      for (let column = 0; column < DIMENSION; column++)
        priorGram += (prior[row] as number) * (gram[row * DIMENSION + column] as number) * (prior[column] as number);
    }
    const ratio = priorGram > 0 ? priorMoment / priorGram : 1;
    const k = Math.min(MAX_PRIOR_SCALE, Math.max(MIN_PRIOR_SCALE, Number.isFinite(ratio) ? ratio : 1));
    const weightSum = gram[0] as number;
    const unseen = UNSEEN_SCALE * weightSum;
    const perRequest = this.#priorWeight / Math.max(this.#count, 1);
    const h = this.#system;
    const g = this.#target;
    h.set(gram);
    for (let index = 0; index < DIMENSION; index++) {
      const diagonal = index * DIMENSION + index;
      const square = gram[diagonal] as number;
      // The intercept's scale is the weight sum; a feature's is its spread about its weighted mean
      // (Σ w (x − x̄)²), what the data can tell its coefficient from the intercept's by.
      const spread = index === 0 ? square : square - (gram[index] as number) ** 2 / weightSum;
      const penalty = perRequest * Math.max(spread, MIN_SPREAD * square, unseen);
      h[diagonal] = square + penalty;
      g[index] = (moment[index] as number) + penalty * k * (prior[index] as number);
    }
    return this.#solver.solve(h, g, this.#theta) && this.#theta.every(Number.isFinite);
  }

  /** The current coefficients' prediction, at least the floor. */
  #estimate(x: Float64Array): number {
    return this.#bounded(Math.max(dot(this.#theta, x), this.floor));
  }

  #bounded(value: number): number {
    return Number.isFinite(value) ? Math.max(MIN_PREDICTION_MS, value) : MAX_PLAUSIBLE_LATENCY_MS;
  }

  #observeFloor(observedMs: number): void {
    this.#floorCurrent = Math.min(this.#floorCurrent, observedMs);
    if (++this.#floorCount >= FLOOR_WINDOW) {
      this.#floorPrevious = this.#floorCurrent;
      this.#floorCurrent = Number.POSITIVE_INFINITY;
      this.#floorCount = 0;
    }
  }

  #reset(): void {
    this.#gram = new Float64Array(DIMENSION * DIMENSION);
    this.#moment = new Float64Array(DIMENSION);
    this.#count = 0;
    this.#theta = this.#prior.slice();
    this.#samples = 0;
    this.#residualVariance = 0;
    this.#floorCurrent = Number.POSITIVE_INFINITY;
    this.#floorPrevious = Number.POSITIVE_INFINITY;
    this.#floorCount = 0;
  }
}

function forget(value: number): number {
  return Math.abs(value) < NEGLIGIBLE ? 0 : value;
}
