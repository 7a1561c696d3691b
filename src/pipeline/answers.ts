// One builder for the body and headers of every answer in the catalogue (answer-catalogue.ts), so
// every stage answers in the same shape.

import { errorRecord, type Framing } from "../streams/framing.js";
import {
  ANSWERS,
  type ConfiguredStatusCode,
  type ErrorAnswerSpec,
  type ErrorCode,
  type RetryCode,
  type Spec,
} from "./answer-catalogue.js";
import { shapeFromPath } from "./request-shape.js";
import type { JsonValue, Reply } from "./types.js";

/**
 * "openai": `{"error": {...}}` as the official OpenAI SDKs parse it, on requests to the OpenAI API
 * endpoints; "problem": RFC 9457 application/problem+json everywhere else.
 */
export type AnswerFormat = "openai" | "problem";

const OPENAI_SHAPES: ReadonlySet<string> = new Set(["chat", "completions", "embeddings", "responses"]);

/**
 * A request gets OpenAI-shaped answers when its path is one of the OpenAI API endpoints the
 * complexity stage reads bodies of (…/chat/completions, …/completions, …/embeddings, …/responses,
 * whatever prefix the route matches). The request's path decides rather than the route's
 * pathPrefix: one route may span several APIs ("/v1/"), and clients of other APIs on it must not
 * get a shape their code does not expect.
 */
export function answerFormatFor(path: string): AnswerFormat {
  const shape = shapeFromPath(path);
  return shape !== undefined && OPENAI_SHAPES.has(shape) ? "openai" : "problem";
}

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** The problem `type` URI of a code: contract.violated → urn:inference-guard:problem:contract-violated. */
export function problemType(code: ErrorCode): string {
  return `urn:inference-guard:problem:${code.replace(/[._]/g, "-")}`;
}

interface AnswerBase {
  readonly format: AnswerFormat;
  /** One human sentence about this occurrence; it ends up in the SDK's error message. */
  readonly detail: string;
  /** Headers of the stage's own on top of the catalogue's (e.g. the contract verdict header). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** What a stage says about one answer; the table says the rest. */
export type AnswerInput<C extends ErrorCode> = AnswerBase & {
  /**
   * The code's members as the table lists them (violations, route, priority): in the problem
   * object, or in the OpenAI `error` object. Never internals: nothing a client could not know.
   */
  readonly extensions: { readonly [M in Spec<C>["members"][number]]: JsonValue };
} & (C extends RetryCode ? { readonly retryAfterMs: number } : { readonly retryAfterMs?: never }) &
  (C extends ConfiguredStatusCode ? { readonly status?: number } : { readonly status?: never });

/** The OpenAI `error.type` a status of the operator's choosing stands for, as the OpenAI API uses them. */
function openAiTypeOf(status: number): ErrorAnswerSpec["openAiType"] {
  if (status === 429) return "rate_limit_error";
  return status < 500 ? "invalid_request_error" : "server_error";
}

/** Retry-After's whole seconds for a wait in ms: rounded up, so a client honouring it never comes back early. */
export function retryAfterSeconds(retryAfterMs: number): number {
  return Math.ceil(retryAfterMs / 1_000);
}

/** The guard's answer for `code`: status, body and headers in the request's shape. */
export function guardAnswer<C extends ErrorCode>(code: C, input: AnswerInput<C>): Reply {
  const spec: ErrorAnswerSpec = ANSWERS[code];
  const status = input.status ?? spec.status;
  const openAiType = status === spec.status ? spec.openAiType : openAiTypeOf(status);
  const core =
    input.format === "openai"
      ? { message: `${spec.title}: ${input.detail}`, type: openAiType, code, param: null }
      : { type: problemType(code), title: spec.title, status, detail: input.detail, code };
  // Core members lead and, spread again last, win over an extension of the same name.
  const members = { ...core, ...input.extensions, ...core };
  const body = input.format === "openai" ? { error: members } : members;
  const headers: Record<string, string> = {
    ...input.headers,
    "content-type": input.format === "openai" ? "application/json" : PROBLEM_CONTENT_TYPE,
    // The answer describes this moment only; no cache may serve it later.
    "cache-control": "no-store",
  };
  if (input.retryAfterMs !== undefined) {
    headers["retry-after"] = String(retryAfterSeconds(input.retryAfterMs));
    // The OpenAI SDKs read retry-after-ms before retry-after: a sub-second wait stays sub-second
    // instead of idling the client (and the upstream's freed capacity) until the next whole second.
    headers["retry-after-ms"] = String(Math.round(input.retryAfterMs));
  }
  if (!spec.retryable) headers["x-should-retry"] = "false";
  return { status, headers, body: JSON.stringify(body), reason: code };
}

/** What a stage says about a streamed answer it ends early; the table says the rest. */
export interface StreamErrorInput<C extends ErrorCode> {
  /** `error.type`: names the kind of failure, since the status (200, already sent) cannot. */
  readonly type: string;
  readonly detail: string;
  readonly extensions: { readonly [M in Spec<C>["members"][number]]: JsonValue };
}

/**
 * The last event of a streamed answer the guard ends early, carrying the OpenAI error object (a
 * stream's status and headers are long gone). SSE: an `error` event, which the OpenAI SDKs raise as
 * an APIError with this message mid-iteration (generic SSE clients see a named `error` event).
 * NDJSON: the object as the last line, `{"error": {…}}`, as Ollama reports an error mid-stream (its
 * clients raise a line with an `error` member).
 */
export function streamErrorEvent<C extends ErrorCode>(code: C, input: StreamErrorInput<C>, framing: Framing): string {
  const spec: ErrorAnswerSpec = ANSWERS[code];
  const core = { message: `${spec.title}: ${input.detail}`, type: input.type, code, param: null };
  // JSON.stringify never writes a line break, so the object is one data line (one NDJSON line).
  return errorRecord(framing, JSON.stringify({ error: { ...core, ...input.extensions, ...core } }));
}
