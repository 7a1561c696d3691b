// The adaptive in-flight budget (cost units). Each completed upstream request gives a size-normalised
// latency ratio (observed ÷ predicted unloaded latency, less its size bucket's learnt excess); per
// window (about one round trip) the mean ratio (each sample at most twice the median) is smoothed
// and the budget moves gradient-style towards the target ratio:
//   limit ← clamp(limit × clamp((target / smoothedRatio)^gain, minGradient, growthCap), min, max)
// growthCap is slowStartGrowth until latency reaches the target (and again once it falls far below
// it), maxGrowth otherwise; growth needs the budget to have been in use. docs/admission.md
// explains every parameter.
import { bucketOf, QuietestMean, UnloadedLatencyModel } from "./baseline.js";
import type { LimitConfig } from "./config.js";

export interface LatencySample {
  readonly cost: number;
  readonly latencyMs: number;
  /** The complexity stage's unloaded prediction, when it made one. */
  readonly predictedLatencyMs?: number;
  /** Other requests of the pool that shared the upstream with this one (0: it ran alone). */
  readonly overlap: number;
  /** latencyMs is a lower bound (a timeout, or a client that gave up before the answer began). */
  readonly censored?: boolean;
}

/** Where a sample's prediction came from; each source is calibrated separately. */
type Source = "complexity" | "own";

/** One sample of a window: its calibrated ratio, and where its size-bucket's excess is kept. */
interface WindowSample {
  readonly ratio: number;
  /** Source and cost bucket; undefined for a censored sample, which teaches no excess. */
  readonly excessKey: string | undefined;
}

/**
 * Weight of one sample in its size bucket's excess (below): about twenty samples of a bucket to
 * learn that its requests are slower than their size says, whatever the load.
 */
const EXCESS_SMOOTHING = 0.05;

/**
 * Share of the way from ratio 1 to the target within which a window's fastest quarter must read for
 * the buckets to learn their excess: an upstream with room to spare.
 */
const EXCESS_LEARNING = 0.125;

/** Excess (log scale) a bucket keeps before any is divided out: 25 % slower than the median request. */
const EXCESS_MARGIN = Math.log(1.25);

/** A window's sample counts as at most this many times its median ratio (see #closeWindow). */
const OUTLIER_MEDIANS = 2;

/**
 * Share of the way from ratio 1 to the target below which slow start resumes: only a nearly idle
 * upstream (a spike forced a deep cut, or load fell) probes fast again. At 0.5 ordinary noise at
 * steady load kept re-entering slow start, and the limit swung in a cycle of cuts and 20 % jumps
 * (coefficient of variation 0.3–0.5 in the simulation; 0.10–0.17 with 0.25 and gain 0.5).
 */
const SLOW_START_AGAIN = 0.25;

/** Growth is proportional to the limit, but never to less than this many typical requests' worth. */
const GROWTH_FLOOR_REQUESTS = 4;

/** Weight of the newest sample in the latency EWMA that sizes windows and drain estimates. */
const LATENCY_SMOOTHING = 0.2;

export class GradientLimiter {
  readonly #config: LimitConfig;
  readonly #own: UnloadedLatencyModel;
  /**
   * Calibration per source: the mean raw ratio of the quietest requests. Divides out a constant
   * bias of the predictor (a complexity model that is 2× optimistic, or a neighbouring size
   * bucket standing in for an empty one), so an unloaded upstream reads as ratio 1.
   */
  readonly #floors: Record<Source, QuietestMean> = { complexity: new QuietestMean(), own: new QuietestMean() };
  #limit: number;
  #smoothedRatio: number | undefined;
  #slowStart = true;
  #meanLatencyMs: number | undefined;
  #windowStart: number | undefined;
  #windowSamples = 0;
  #windowMaxInFlight = 0;
  #window: WindowSample[] = [];
  /**
   * Per source and cost bucket, how much slower (log scale) its requests read than the window's
   * median request, smoothed over many windows; only what exceeds EXCESS_MARGIN is divided out.
   * Load slows every request of the pool at once, so a bucket that reads slow while the median
   * request does not is not showing load: it holds a kind of request its size does not describe
   * (one that never ran alone, judged by the quiet requests of its size or another bucket's stand-in).
   */
  readonly #excess = new Map<string, number>();

  constructor(config: LimitConfig) {
    this.#config = config;
    this.#own = new UnloadedLatencyModel();
    this.#limit = config.initial;
  }

  get limit(): number {
    return this.#limit;
  }

  get smoothedRatio(): number | undefined {
    return this.#smoothedRatio;
  }

  /** Smoothed upstream latency of recent requests, ms; undefined before the first sample. */
  get meanLatencyMs(): number | undefined {
    return this.#meanLatencyMs;
  }

  /** The guard's own estimate of a request's latency on an idle upstream; undefined before data. */
  predictUnloadedMs(cost: number): number | undefined {
    return this.#own.predict(cost);
  }

  /** Tracks how much of the budget is in use, which gates growth. Call whenever in-flight cost rises. */
  noteInFlight(inFlight: number): void {
    if (inFlight > this.#windowMaxInFlight) this.#windowMaxInFlight = inFlight;
  }

  /**
   * Feeds one completed upstream request, with the in-flight cost it completed from and what a
   * typical request holds of the budget (the smallest growth step). Returns its normalised latency
   * ratio (for the histogram), and may move the limit when it closes a window. A censored sample
   * counts only when its lower bound already shows a slow-down (its ratio is then a lower bound
   * too); it teaches neither the unloaded baseline nor the calibration, and returns undefined.
   */
  observe(sample: LatencySample, inFlight: number, now: number, typicalCharge: number): number | undefined {
    this.noteInFlight(inFlight);
    const cost = sample.cost;
    const latency = Math.max(sample.latencyMs, this.#config.noiseFloorMs);
    const usePredicted =
      this.#config.usePredictedLatency && sample.predictedLatencyMs !== undefined && sample.predictedLatencyMs > 0;
    const source: Source = usePredicted ? "complexity" : "own";
    const prediction = usePredicted ? sample.predictedLatencyMs : this.#own.predict(cost);
    const predicted = prediction === undefined ? undefined : Math.max(prediction, this.#config.noiseFloorMs);
    const floors = this.#floors[source];
    // With no prediction yet, this sample is its own baseline.
    const raw = predicted === undefined ? 1 : latency / predicted;
    const censored = sample.censored === true;
    if (censored) {
      const floor = floors.value;
      if (predicted === undefined || floor === undefined || raw / floor <= 1) return undefined;
    } else {
      this.#own.observe(cost, latency, sample.overlap);
      floors.observe(raw, sample.overlap);
    }
    this.#meanLatencyMs =
      this.#meanLatencyMs === undefined
        ? latency
        : this.#meanLatencyMs + LATENCY_SMOOTHING * (latency - this.#meanLatencyMs);

    const key = `${source}:${bucketOf(cost)}`;
    const ratio = raw / (floors.value ?? raw) / Math.exp(appliedExcess(this.#excess.get(key) ?? 0));
    this.#window.push({ ratio, excessKey: censored ? undefined : key });
    this.#windowSamples += 1;
    this.#windowStart ??= now;

    if (this.#windowSamples >= this.#config.minWindowSamples && now - this.#windowStart >= this.#windowLengthMs()) {
      this.#closeWindow(now, typicalCharge);
    }
    return censored ? undefined : ratio;
  }

  /** About one round trip: the effect of a limit change shows up in latency no sooner. */
  #windowLengthMs(): number {
    return Math.max(this.#config.minWindowMs, this.#meanLatencyMs ?? 0);
  }

  #closeWindow(now: number, typicalCharge: number): void {
    // The mean with every sample counted as at most twice the window's median: load slows every
    // request of the pool at once, so it moves the middle of the window, while a minority of
    // requests that read slow for reasons of their own (a kind whose size understates its work,
    // before its bucket has learnt its excess) would move a plain mean as far as they like: one
    // request reading 300× slowed down cut the limit as a whole window of overload does. The median
    // alone resisted that too, but read overload lower and noisier in five-sample windows (limit CV
    // 0.19 at 2× and critical kept 98.7% at 4× in the simulation, against 0.15 and 99%).
    const ratios = this.#window.map((sample) => sample.ratio).sort((a, b) => a - b);
    const median = quantile(ratios, 0.5);
    const windowRatio =
      ratios.reduce((sum, ratio) => sum + Math.min(ratio, OUTLIER_MEDIANS * median), 0) / ratios.length;
    const { targetRatio } = this.#config;
    // Buckets learn their excess only while the fastest quarter of the window reads (nearly) unloaded:
    // then the upstream has room, and a bucket reading slow is not showing load. Under load nothing
    // is learnt: small requests read slower than large ones behind a queue (it adds the same wait to
    // each), and an excess learnt then would hide part of the overload.
    if (quantile(ratios, 0.25) <= 1 + (targetRatio - 1) * EXCESS_LEARNING) this.#learnExcess(median);
    const smoothed =
      this.#smoothedRatio === undefined
        ? windowRatio
        : this.#smoothedRatio + this.#config.smoothing * (windowRatio - this.#smoothedRatio);
    this.#smoothedRatio = smoothed;

    const { minGradient, growthUtilisation, min, max } = this.#config;
    // Slow start (as in TCP): grow fast until latency first reaches the target, gently after that.
    if (smoothed >= targetRatio) this.#slowStart = false;
    // Latency far below the target (load fell, or a spike forced a deep cut): the upstream has room
    // to spare, so probe fast again instead of crawling back at maxGrowth.
    else if (smoothed <= 1 + (targetRatio - 1) * SLOW_START_AGAIN) this.#slowStart = true;
    const maxGrowth = this.#slowStart ? this.#config.slowStartGrowth : this.#config.maxGrowth;
    const inUse = this.#windowMaxInFlight >= growthUtilisation * this.#limit;
    // The correction is damped (gain < 1): a window 10 % over the target cuts ~5 %, so noise in one
    // window's ratio moves the limit half as much, and the limit settles instead of oscillating.
    let gradient = Math.min(maxGrowth, Math.max(minGradient, (targetRatio / smoothed) ** this.#config.gain));
    // An idle budget says nothing about what the upstream could take: never grow it.
    if (!inUse) gradient = Math.min(gradient, 1);
    // Multiplicative growth alone would crawl at tiny limits (one or two requests' worth): grow as if
    // the limit held at least a few typical requests.
    const next =
      gradient > 1
        ? this.#limit + (gradient - 1) * Math.max(this.#limit, GROWTH_FLOOR_REQUESTS * typicalCharge)
        : this.#limit * gradient;
    this.#limit = Math.min(max, Math.max(min, next));

    this.#windowStart = now;
    this.#windowSamples = 0;
    this.#windowMaxInFlight = 0;
    this.#window = [];
  }

  /** Moves each sampled bucket's excess towards how much slower than the window's median it read. */
  #learnExcess(median: number): void {
    for (const { ratio, excessKey } of this.#window) {
      if (excessKey === undefined) continue;
      const excess = this.#excess.get(excessKey) ?? 0;
      // The sample's ratio before this bucket's correction: the excess learns the bucket's whole offset.
      const uncorrected = Math.log(ratio / median) + appliedExcess(excess);
      this.#excess.set(excessKey, excess + EXCESS_SMOOTHING * (uncorrected - excess));
    }
  }
}

/**
 * The q-quantile of ascending values, interpolated between the two nearest ranks. Interpolated, not
 * the nearest rank below: windows are small (five samples or a few more), and in an even-sized one
 * the lower of the two middle ratios reads the load systematically low (the limit settled higher, and
 * goodput at 2–4× fell 0.01–0.02 in the simulation).
 */
function quantile(ascending: readonly number[], q: number): number {
  const position = q * (ascending.length - 1);
  const below = Math.floor(position);
  const low = ascending[below] as number;
  const high = ascending[Math.min(ascending.length - 1, below + 1)] as number;
  return low + (high - low) * (position - below);
}

/**
 * The part of a bucket's excess that is divided out: beyond EXCESS_MARGIN only. A bucket's estimate
 * of a few dozen noisy samples sits above or below 0 by chance; divided out whenever above, the
 * chance would lower the pool's reading on average (the limit settled higher, critical kept fell
 * below 99% at 4× in the simulation). A kind that reads 10–300× slow is still corrected to within
 * the margin.
 */
function appliedExcess(excess: number): number {
  return Math.max(0, excess - EXCESS_MARGIN);
}
