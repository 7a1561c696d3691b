// The adaptive in-flight budget (cost units). Each completed upstream request gives a size-normalised
// latency ratio (observed ÷ predicted unloaded latency); per window (about one round trip) the mean
// ratio is smoothed and the budget moves gradient-style towards the target ratio:
//   limit ← clamp(limit × clamp((target / smoothedRatio)^gain, minGradient, growthCap), min, max)
// growthCap is slowStartGrowth until latency reaches the target (and again once it falls far below
// it), maxGrowth otherwise; growth needs the budget to have been in use. docs/admission.md
// explains every parameter.
import { QuietestMean, UnloadedLatencyModel } from "./baseline.js";
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

interface SourceWindow {
  rawSum: number;
  samples: number;
}

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
  #window: Record<Source, SourceWindow> = emptyWindow();

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

    const bucket = this.#window[source];
    bucket.rawSum += raw;
    bucket.samples += 1;
    this.#windowSamples += 1;
    this.#windowStart ??= now;

    const ratio = raw / (floors.value ?? raw);
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
    let ratioSum = 0;
    let samples = 0;
    for (const source of ["complexity", "own"] as const) {
      const window = this.#window[source];
      if (window.samples === 0) continue;
      const meanRaw = window.rawSum / window.samples;
      ratioSum += (meanRaw / (this.#floors[source].value ?? meanRaw)) * window.samples;
      samples += window.samples;
    }
    const windowRatio = ratioSum / samples;
    const smoothed =
      this.#smoothedRatio === undefined
        ? windowRatio
        : this.#smoothedRatio + this.#config.smoothing * (windowRatio - this.#smoothedRatio);
    this.#smoothedRatio = smoothed;

    const { targetRatio, minGradient, growthUtilisation, min, max } = this.#config;
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
    this.#window = emptyWindow();
  }
}

function emptyWindow(): Record<Source, SourceWindow> {
  return { complexity: { rawSum: 0, samples: 0 }, own: { rawSum: 0, samples: 0 } };
}
