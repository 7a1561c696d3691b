// The route's expected output size, learned from the completion tokens its upstream reports.
// max_tokens is a ceiling, not a forecast: most answers end well before it, and a request that
// names none still produces something. Pricing every request at its ceiling (or at one configured
// default) over-reserves the admission budget and misplaces requests across tiers, so once enough
// answers were reported a request is expected to produce the route's mean answer, cut at its own
// max_tokens.
//
// Only reported sizes teach it (never an estimate). An answer that reached its max_tokens was cut:
// its real length is at least that, so it may raise the mean but never lower it. How often answers
// run to their max_tokens is learned too: on a route where most do (a model told to fill its budget),
// the mean of the answers says little about a request asking for more, which is then expected to
// run to its own limit that often (the mean alone predicted a 925-token answer at 245 ms, and Envoy
// timed it out at the guard's own 3 × prediction).
import type { OutputConfig } from "./config.js";
import { MAX_OUTPUT_TOKENS, type OutputAsk } from "./features.js";

export type OutputLearnResult = "learned" | "skipped_truncated";

export class OutputEstimate {
  readonly #config: OutputConfig;
  readonly #default: number;
  #mean: number | undefined;
  #samples = 0;
  /** Share of answers with a max_tokens that reached it (smoothed like the mean). */
  #truncatedShare = 0;
  #limited = 0;

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
    if (learned === undefined) return (ask.limit ?? this.#default) * ask.generations;
    if (ask.limit === undefined) return learned * ask.generations;
    const share = this.#truncatedShare;
    return (share * ask.limit + (1 - share) * Math.min(ask.limit, learned)) * ask.generations;
  }

  /** Learns from the completion tokens the upstream reported for a request that asked `ask`. */
  learn(ask: OutputAsk, completionTokens: number): OutputLearnResult {
    const perGeneration = Math.min(completionTokens / ask.generations, MAX_OUTPUT_TOKENS);
    const truncated = ask.limit !== undefined && perGeneration >= ask.limit;
    if (ask.limit !== undefined) {
      this.#limited++;
      const weight = Math.max(1 / this.#limited, 1 / this.#config.memory);
      this.#truncatedShare += weight * ((truncated ? 1 : 0) - this.#truncatedShare);
    }
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
