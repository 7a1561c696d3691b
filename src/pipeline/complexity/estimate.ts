// From request bytes to features. Bad input is an expected outcome here: whatever the body is,
// the result is an estimate (by size when the body cannot be read), and the reason it fell back.
import { NOT_JSON, parseJsonBody } from "../json-body.js";
import { shapeFromPath } from "../request-shape.js";
import { type Features, type Shape, sizeFeatures } from "./features.js";
import { scanJson } from "./jsonScan.js";
import { extractKserve } from "./kserve.js";
import {
  type CountTokens,
  type ExpectedOutput,
  extractChat,
  extractCompletions,
  extractEmbeddings,
  extractResponses,
  isObject,
} from "./openai.js";

export type FallbackReason =
  /** Not a JSON object (form data, plain text, binary, invalid JSON). */
  | "non_json"
  /** Unbalanced brackets or an open string at the end: the body was cut. */
  | "truncated"
  /** Nesting beyond maxDepth. */
  | "too_deep"
  /** Larger than maxBodyBytes (or announced so by content-length). */
  | "too_large"
  /** A JSON object of no known API shape. */
  | "unknown_shape"
  /** The path names an API but the body lacks the fields that API requires. */
  | "unexpected_fields";

export const FALLBACK_REASONS: readonly FallbackReason[] = [
  "non_json",
  "truncated",
  "too_deep",
  "too_large",
  "unknown_shape",
  "unexpected_fields",
];

export interface Estimate {
  readonly features: Features;
  readonly fallback?: FallbackReason;
  /** The body's `model`, when it names one. */
  readonly model?: string;
}

export interface EstimateOptions {
  readonly maxBodyBytes: number;
  readonly maxDepth: number;
  readonly expectedOutput: ExpectedOutput;
  readonly countTokens: CountTokens;
}

const RESPONSES_ONLY_KEYS = ["instructions", "max_output_tokens", "previous_response_id", "reasoning", "text", "tools"];

/** For gateways that rewrite paths: the fields each API requires tell the shapes apart. */
export function shapeFromBody(body: Record<string, unknown>): Shape {
  if (Array.isArray(body.messages)) return "chat";
  if (Array.isArray(body.inputs)) return "kserve";
  if (body.prompt !== undefined) return "completions";
  if (body.input !== undefined) return RESPONSES_ONLY_KEYS.some((key) => key in body) ? "responses" : "embeddings";
  return "other";
}

function extract(shape: Shape, body: Record<string, unknown>, options: EstimateOptions): Features | undefined {
  switch (shape) {
    case "chat":
      return extractChat(body, options.countTokens, options.expectedOutput);
    case "completions":
      return extractCompletions(body, options.countTokens, options.expectedOutput);
    case "embeddings":
      return extractEmbeddings(body, options.countTokens);
    case "responses":
      return extractResponses(body, options.countTokens, options.expectedOutput);
    case "kserve":
      return extractKserve(body);
    case "other":
      return undefined;
  }
}

export function estimateBySize(bytes: number, fallback?: FallbackReason): Estimate {
  const features = sizeFeatures(bytes);
  return fallback === undefined ? { features } : { features, fallback };
}

function parseObject(body: Uint8Array): Record<string, unknown> | undefined {
  const value = parseJsonBody(body);
  return value !== NOT_JSON && isObject(value) ? value : undefined;
}

/**
 * Features of one request body. `jsonLength` is the length of the JSON part when the body is
 * a JSON header followed by binary tensors (Triton's binary extension); the binary part is
 * described by the header's shapes, so it is not read.
 */
export function estimateBody(
  path: string,
  body: Uint8Array,
  options: EstimateOptions,
  jsonLength = body.length,
): Estimate {
  if (body.length === 0) return estimateBySize(0);
  if (body.length > options.maxBodyBytes) return estimateBySize(body.length, "too_large");
  const jsonEnd = Math.min(jsonLength, body.length);
  const verdict = scanJson(body, options.maxDepth, jsonEnd);
  if (verdict === "not_object") return estimateBySize(body.length, "non_json");
  if (verdict !== "ok") return estimateBySize(body.length, verdict);
  const parsed = parseObject(jsonEnd === body.length ? body : body.subarray(0, jsonEnd));
  if (parsed === undefined) return estimateBySize(body.length, "non_json");
  const pathShape = shapeFromPath(path);
  const shape = pathShape ?? shapeFromBody(parsed);
  if (shape === "other") return estimateBySize(body.length, "unknown_shape");
  const features = extract(shape, parsed, options);
  if (features === undefined)
    return estimateBySize(body.length, pathShape === undefined ? "unknown_shape" : "unexpected_fields");
  return typeof parsed.model === "string" ? { features, model: parsed.model } : { features };
}
