// The route's expected output size, learned from the completion tokens its upstream reports.
// max_tokens is a ceiling, not a forecast: most answers end well before it, and a request that
// names none still produces something. Pricing every request at its ceiling (or at one configured
// default) over-reserves the admission budget and misplaces requests across tiers, so once enough
// answers were reported a request is expected to produce the route's mean answer, cut at its own
// max_tokens.
//
// Only reported sizes teach it (never an estimate). An answer that reached its max_tokens was cut:
// its real length is at least that, so it may raise the mean but never lower it.
import type { OutputConfig } from "./config.js";
import { MAX_OUTPUT_TOKENS, type OutputAsk } from "./features.js";

export type OutputLearnResult = "learned" | "skipped_truncated";

export class OutputEstimate {
  readonly #config: OutputConfig;
  readonly #default: number;
  #mean: number | undefined;
  #samples = 0;

  /** `defaultTokens`: assumed per generation when a request names no limit, until learned. */
  constructor(config: OutputConfig, defaultTokens: number) {
    this.#config = config;
    this.#default = defaultTokens;
  }

  /** Reported answers learned from. */
  get samples(): number {
    return this.#samples;
  }

  /** Output tokens per generation assumed for a request that names no limit. */
  get tokens(): number {
    return this.#learned() ?? this.#default;
  }

  /** Expected output tokens of a request, all generations. */
  expected(ask: OutputAsk): number {
    if (ask.generations === 0) return 0;
    const learned = this.#learned();
    const perGeneration =
      learned === undefined ? (ask.limit ?? this.#default) : Math.min(ask.limit ?? Number.POSITIVE_INFINITY, learned);
    return perGeneration * ask.generations;
  }

  /** Learns from the completion tokens the upstream reported for a request that asked `ask`. */
  learn(ask: OutputAsk, completionTokens: number): OutputLearnResult {
    const perGeneration = Math.min(completionTokens / ask.generations, MAX_OUTPUT_TOKENS);
    const truncated = ask.limit !== undefined && perGeneration >= ask.limit;
    if (truncated && this.#mean !== undefined && perGeneration <= this.#mean) return "skipped_truncated";
    this.#samples++;
    const weight = Math.max(1 / this.#samples, 1 / this.#config.memory);
    this.#mean = this.#mean === undefined ? perGeneration : this.#mean + weight * (perGeneration - this.#mean);
    return "learned";
  }

  #learned(): number | undefined {
    return this.#samples >= this.#config.minSamples ? this.#mean : undefined;
  }
}
