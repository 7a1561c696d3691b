// What a request asks of the model, extracted from its body. Every field is a count in natural
// units; config weights turn them into cost units and the online model into milliseconds.
import type { PathShape } from "../request-shape.js";

/** The request's API, from its path or (when a gateway rewrote the path) its body; "other" when neither tells. */
export type Shape = PathShape | "other";

/** A client may ask for any number; this keeps one request (or one report) from an unbounded output. */
export const MAX_OUTPUT_TOKENS = 10_000_000;

/**
 * What a request asks of its output: the expected size is an estimate, and learning from the
 * reported size needs the ask it was made for (per generation, and whether the limit cut it).
 */
export interface OutputAsk {
  /** Sequences generated: n (or best_of) × prompts; 0 for requests that generate nothing. */
  readonly generations: number;
  /** The request's max_tokens (or its API's name for it) per generation, when it set one. */
  readonly limit?: number;
}

export interface Features {
  readonly shape: Shape;
  /** Estimated prompt tokens: message texts, prompts, instructions, per-message framing. */
  readonly inputTokens: number;
  /** Estimated tokens of tool/function definitions and structured-output schemas. */
  readonly toolTokens: number;
  readonly images: number;
  /** Image tokens by the provider's detail rule (low: 85, high/auto: a 1024×1024 image's 765). */
  readonly imageTokens: number;
  /** Expected output tokens, all generations (0 for requests that generate nothing); see output.ts. */
  readonly outputTokens: number;
  readonly output: OutputAsk;
  /** KServe v2 / Triton input tensor bytes: elements (product of shape) × datatype size. */
  readonly tensorBytes: number;
  /** Bytes scored by size only: bodies not understood, attachments such as audio or files. */
  readonly otherBytes: number;
  /** Streamed responses: their headers come with the first token, the whole job ends with the stream. */
  readonly stream: boolean;
}

export const IMAGE_TOKENS_LOW_DETAIL = 85;
export const IMAGE_TOKENS_HIGH_DETAIL = 765;

export function emptyFeatures(shape: Shape): Features {
  return {
    shape,
    inputTokens: 0,
    toolTokens: 0,
    images: 0,
    imageTokens: 0,
    outputTokens: 0,
    output: { generations: 0 },
    tensorBytes: 0,
    otherBytes: 0,
    stream: false,
  };
}

export function sizeFeatures(bytes: number): Features {
  return { ...emptyFeatures("other"), otherBytes: bytes };
}
