// What a request asks of the model, extracted from its body. Every field is a count in natural
// units; config weights turn them into cost units and the online model into milliseconds.
import type { PathShape } from "../request-shape.js";

/** The request's API, from its path or (when a gateway rewrote the path) its body; "other" when neither tells. */
export type Shape = PathShape | "other";

export interface Features {
  readonly shape: Shape;
  /** Estimated prompt tokens: message texts, prompts, instructions, per-message framing. */
  readonly inputTokens: number;
  /** Estimated tokens of tool/function definitions and structured-output schemas. */
  readonly toolTokens: number;
  readonly images: number;
  /** Image tokens by the provider's detail rule (low: 85, high/auto: a 1024×1024 image's 765). */
  readonly imageTokens: number;
  /** Output budget: max tokens × n × prompts (0 for requests that generate nothing). */
  readonly outputTokens: number;
  /** KServe v2 / Triton input tensor bytes: elements (product of shape) × datatype size. */
  readonly tensorBytes: number;
  /** Bytes scored by size only: bodies not understood, attachments such as audio or files. */
  readonly otherBytes: number;
  /** Streamed responses: the latency the guard observes is time to first byte, not the whole job. */
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
    tensorBytes: 0,
    otherBytes: 0,
    stream: false,
  };
}

export function sizeFeatures(bytes: number): Features {
  return { ...emptyFeatures("other"), otherBytes: bytes };
}
