// The latency-model benchmark in process: the shed benchmark's request mix (bench/shed/workload.ts)
// scored by the complexity stage's real estimator, served by the demo model's real latency function
// and its real batcher (src/demo/batcher.ts: capacity slots, batch penalty, FIFO queue) in virtual
// time at a given open-loop load, plus the transport's noise. Each model predicts a request when it
// arrives and learns its latency when it completes, as the stage does, so every prediction is made
// before the model saw that request (an honest, held-out error).
import { Batcher, type BatcherClock } from "../src/demo/batcher.js";
import { answer, requestedTokens } from "../src/demo/endpoints.js";
import { complexityRouteSchema } from "../src/pipeline/complexity/config.js";
import { type EstimateOptions, estimateBody } from "../src/pipeline/complexity/estimate.js";
import type { Features } from "../src/pipeline/complexity/features.js";
import { OutputEstimate } from "../src/pipeline/complexity/output.js";
import { estimateTextTokens } from "../src/pipeline/complexity/tokens.js";
import type { JsonValue } from "../src/pipeline/types.js";
import { gaussian, seededRandom } from "../src/util/seeded-random.js";
import { DEFAULT_OPTIONS, requestFactory, type ServerModel } from "./shed/workload.js";

export const CHAT_PATH = "/v1/chat/completions";

export interface ScoredRequest {
  readonly body: string;
  /** The demo model's own service time for it, alone on the server (its latency function). */
  readonly workMs: number;
  /** Completion tokens the demo model reports for it (its answer's usage). */
  readonly completionTokens: number;
}

/** What both models are asked: predict at `predictAt`, learn `observedMs` at `learnAt`. */
export interface Trace {
  readonly request: ScoredRequest;
  readonly predictAt: number;
  readonly learnAt: number;
  readonly observedMs: number;
}

/** The demo model's latency function (src/demo/server.ts): base + per KiB of body + per requested token. */
export function demoWorkMs(body: string, server: ServerModel): number {
  return (
    server.baseLatencyMs +
    (server.perKbMs * Buffer.byteLength(body)) / 1024 +
    server.perTokenMs * requestedTokens(JSON.parse(body) as JsonValue)
  );
}

/** The completion tokens the demo model reports for a chat request (src/demo/endpoints.ts). */
export function demoCompletionTokens(body: string): number {
  const answered = answer({ kind: "chat" }, JSON.parse(body) as JsonValue, {
    variant: "v1",
    version: "v1",
    task: undefined,
    fence: false,
    responseId: "bench",
    createdSeconds: 0,
  });
  const usage =
    answered.kind === "json" ? (answered.body as { usage?: { completion_tokens?: number } }).usage : undefined;
  return usage?.completion_tokens ?? 0;
}

export function scoredRequest(body: string, server: ServerModel): ScoredRequest {
  return { body, workMs: demoWorkMs(body, server), completionTokens: demoCompletionTokens(body) };
}

/**
 * What the complexity stage does around its latency model (src/pipeline/complexity/stage.ts), with
 * the default route settings: features from the body with the route's output estimate at that
 * moment; on completion the output estimate learns the reported completion tokens and the model the
 * latency of the output produced. `learnOutput: false` is `output.learn: false` (expected output =
 * max_tokens), which is also what a model can be held to when the answer length is known.
 */
export class StageEmulation {
  readonly #output: OutputEstimate;
  readonly #learnOutput: boolean;
  readonly #options: EstimateOptions;
  readonly #encoder = new TextEncoder();

  constructor(
    readonly model: Predictor,
    learnOutput: boolean,
  ) {
    const settings = complexityRouteSchema.parse({ enabled: true });
    const output = new OutputEstimate(settings.output, settings.defaultMaxOutputTokens);
    this.#output = output;
    this.#learnOutput = learnOutput;
    this.#options = {
      maxBodyBytes: settings.maxBodyBytes,
      maxDepth: settings.maxDepth,
      expectedOutput: (ask) => output.expected(ask),
      countTokens: estimateTextTokens,
    };
  }

  features(body: string): Features {
    return estimateBody(CHAT_PATH, this.#encoder.encode(body), this.#options).features;
  }

  learn(features: Features, completionTokens: number, observedMs: number): void {
    if (features.output.generations > 0 && this.#learnOutput) this.#output.learn(features.output, completionTokens);
    this.model.update({ ...features, outputTokens: completionTokens }, observedMs);
  }
}

export type Mix = "shed" | "collinear" | "one_budget";

/** The share of "one_budget" requests that ask for another output budget than ONE_BUDGET. */
export const OTHER_BUDGET_SHARE = 0.05;
export const ONE_BUDGET = 256;

/**
 * The shed benchmark's mix (prompts and output budgets drawn independently), and two variants of
 * the same requests that leave directions of the fit unexcited:
 * - "collinear": max_tokens proportional to the prompt (output tokens ∝ input tokens);
 * - "one_budget": 95% of requests ask for the same max_tokens (256, a client library's default):
 *   the output feature is then nearly constant, the intercept's twin, and only the 5% with another
 *   budget show what an output token costs.
 */
export function requests(mix: Mix, count: number, seed: number, server: ServerModel): ScoredRequest[] {
  const next = requestFactory({ ...DEFAULT_OPTIONS, server, seed });
  const random = seededRandom(seed + 1);
  const out: ScoredRequest[] = [];
  for (let index = 0; index < count; index++) {
    let { body } = next(index);
    const parsed = JSON.parse(body) as { max_tokens: number; messages: Array<{ content: string }> };
    if (mix === "collinear") {
      const chars = parsed.messages[0]?.content.length ?? 0;
      parsed.max_tokens = Math.max(8, Math.min(1024, Math.round(chars / 8)));
      body = JSON.stringify(parsed);
    } else if (mix === "one_budget" && random() >= OTHER_BUDGET_SHARE) {
      parsed.max_tokens = ONE_BUDGET;
      body = JSON.stringify(parsed);
    }
    out.push(scoredRequest(body, server));
  }
  return out;
}

/** A virtual clock whose timers run in order, with the promise callbacks they trigger, as fast as possible. */
class VirtualClock implements BatcherClock {
  #now = 0;
  #sequence = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  readonly now = (): number => this.#now;

  readonly schedule = (delayMs: number, fn: () => void): (() => void) => {
    const id = this.#sequence++;
    this.#timers.set(id, { at: this.#now + Math.max(0, delayMs), fn });
    return () => this.#timers.delete(id);
  };

  async run(): Promise<void> {
    for (;;) {
      let nextId = -1;
      let nextAt = Number.POSITIVE_INFINITY;
      for (const [id, timer] of this.#timers) {
        if (timer.at < nextAt) {
          nextAt = timer.at;
          nextId = id;
        }
      }
      const timer = this.#timers.get(nextId);
      if (timer === undefined) return;
      this.#timers.delete(nextId);
      this.#now = Math.max(this.#now, timer.at);
      timer.fn();
      // Let the batcher's promise callbacks (completions) run at this instant.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
}

/**
 * Served latency of each request at the demo server, sent open loop at `arrivals` (ms). With
 * `maxInFlight`, a request arriving while that many are at the server is refused (NaN), as an
 * admission limit in front of it would shed it.
 */
export async function serve(
  workMs: readonly number[],
  arrivals: readonly number[],
  server: ServerModel,
  maxInFlight = Number.POSITIVE_INFINITY,
): Promise<number[]> {
  const clock = new VirtualClock();
  const batcher = new Batcher({ capacity: server.capacity, batchPenalty: server.batchPenalty }, clock);
  const latencies = new Array<number>(workMs.length).fill(Number.NaN);
  workMs.forEach((work, index) => {
    clock.schedule(arrivals[index] as number, () => {
      if (batcher.active + batcher.waiting >= maxInFlight) return;
      const start = clock.now();
      void batcher.run(work).then(() => {
        latencies[index] = clock.now() - start;
      });
    });
  });
  await clock.run();
  batcher.close();
  return latencies;
}

/** Requests per second the server completes when saturated (a closed loop with every slot busy and a queue). */
export async function capacityPerSecond(workMs: readonly number[], server: ServerModel): Promise<number> {
  // Everything queued at once is a saturated server from the first request to the last.
  const latencies = await serve(
    workMs,
    workMs.map(() => 0),
    server,
  );
  return (workMs.length / Math.max(...latencies)) * 1000;
}

/** Median time the stack adds to the demo's own service time (measured live, one at a time). */
export const TRANSPORT_MS = 2.5;

/**
 * What the stack adds to the server's time and how it jitters, as measured on the live stack (the
 * live part of this benchmark, one request at a time: upstream time − the demo's work time, p10
 * 1.7–1.9 ms, p50 2.4–2.7 ms, p90 3.5–5.8 ms): Envoy and loopback both ways, the demo parsing the
 * body, a timer firing late. Lognormal around TRANSPORT_MS, plus 2% multiplicative jitter.
 */
export function transportNoise(seed: number): (servedMs: number) => number {
  const random = seededRandom(seed);
  return (servedMs) => servedMs * (1 + 0.02 * gaussian(random)) + TRANSPORT_MS * Math.exp(0.35 * gaussian(random));
}

/**
 * One open-loop run: `load` × capacity, evenly spaced as the shed benchmark sends (0: one at a
 * time). Above capacity the server's queue would grow without bound, so there `maxInFlight` stands
 * for an admission limit: requests beyond it are shed and neither predicted nor learned.
 */
export async function trace(
  scored: readonly ScoredRequest[],
  load: number,
  capacity: number,
  server: ServerModel,
  seed: number,
  maxInFlight = Number.POSITIVE_INFINITY,
): Promise<Trace[]> {
  const noise = transportNoise(seed);
  const workMs = scored.map((request) => request.workMs);
  if (load === 0) {
    // One at a time: each request starts when the previous one has been answered.
    let now = 0;
    return scored.map((request) => {
      const observedMs = Math.max(0, noise(request.workMs));
      const entry = { request, predictAt: now, learnAt: now + observedMs, observedMs };
      now += observedMs + 1;
      return entry;
    });
  }
  const spacing = 1000 / (load * capacity);
  const arrivals = scored.map((_, index) => index * spacing);
  const served = await serve(workMs, arrivals, server, maxInFlight);
  return scored.flatMap((request, index) => {
    const latency = served[index] as number;
    if (Number.isNaN(latency)) return [];
    const observedMs = Math.max(0, noise(latency));
    const predictAt = arrivals[index] as number;
    return [{ request, predictAt, learnAt: predictAt + observedMs, observedMs }];
  });
}

export interface Predictor {
  predict(features: Features): number;
  update(features: Features, observedMs: number): unknown;
  coefficients(): ReadonlyMap<string, number>;
}

export interface Replay {
  /** |predicted − observed| / observed of every request predicted after the warm-up. */
  readonly relativeErrors: number[];
  /** The same against the request's unloaded latency (its work time plus the transport). */
  readonly unloadedErrors: number[];
  readonly predictions: number[];
  /** Smallest coefficient (intercept included) seen after any update. */
  readonly minCoefficient: number;
  readonly minIntercept: number;
  readonly coefficients: Record<string, number>;
}

/** Feeds a trace to a stage in time order: predictions at arrival, updates at completion. */
export function replay(
  stage: StageEmulation,
  entries: readonly Trace[],
  warmUp: number,
  unloadedOverheadMs: number,
): Replay {
  type Event = { at: number; kind: 0 | 1; index: number };
  const events: Event[] = [];
  entries.forEach((entry, index) => {
    events.push({ at: entry.predictAt, kind: 0, index }, { at: entry.learnAt, kind: 1, index });
  });
  // At equal times a completion is learned before the next arrival is predicted.
  events.sort((a, b) => a.at - b.at || b.kind - a.kind);
  const predicted = new Array<number>(entries.length).fill(Number.NaN);
  const scored = new Array<Features | undefined>(entries.length);
  let minCoefficient = Number.POSITIVE_INFINITY;
  let minIntercept = Number.POSITIVE_INFINITY;
  const { model } = stage;
  for (const event of events) {
    const entry = entries[event.index] as Trace;
    if (event.kind === 0) {
      const features = stage.features(entry.request.body);
      scored[event.index] = features;
      predicted[event.index] = model.predict(features);
    } else {
      const features = scored[event.index];
      if (features === undefined) continue;
      stage.learn(features, entry.request.completionTokens, entry.observedMs);
      for (const [name, value] of model.coefficients()) {
        minCoefficient = Math.min(minCoefficient, value);
        if (name === "intercept") minIntercept = Math.min(minIntercept, value);
      }
    }
  }
  const relativeErrors: number[] = [];
  const unloadedErrors: number[] = [];
  entries.forEach((entry, index) => {
    if (index < warmUp) return;
    const prediction = predicted[index] as number;
    relativeErrors.push(Math.abs(prediction - entry.observedMs) / entry.observedMs);
    const unloaded = entry.request.workMs + unloadedOverheadMs;
    unloadedErrors.push(Math.abs(prediction - unloaded) / unloaded);
  });
  return {
    relativeErrors,
    unloadedErrors,
    predictions: predicted,
    minCoefficient,
    minIntercept,
    coefficients: Object.fromEntries(model.coefficients()),
  };
}
