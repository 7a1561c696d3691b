// What reading one event of an inference stream yields, and what the format readers (chat.ts,
// responses.ts, ollama.ts, generic in formats.ts) share: JSON guards, usage and error shapes, the text budget.
// The assembler (formats.ts) owns the public class; the readers fill a ReadingDraft per event.

export type StreamFormat = "openai.chat" | "openai.completions" | "openai.responses" | "ollama" | "generic";

/** Text appended by an event to one output target. */
export interface TextDelta {
  /** Concrete path in the assembled document, e.g. "choices[0].message.content". */
  readonly target: string;
  readonly text: string;
}

export interface TokenUsage {
  readonly promptTokens?: number;
  readonly completionTokens?: number;
  readonly totalTokens?: number;
}

export interface UpstreamError {
  readonly message: string;
  readonly type?: string;
  readonly code?: string;
}

export interface EventReading {
  /** Text appended by this event, in order. */
  readonly deltas: readonly TextDelta[];
  /** Targets finished by this event (finish_reason of their choice, response.output_text.done, etc.). */
  readonly completed: readonly string[];
  /** generic format: this event's JSON value (one complete document); [] otherwise. */
  readonly documents: readonly unknown[];
  /** Usage reported by this event. */
  readonly usage?: TokenUsage;
  /** Model name seen on this event. */
  readonly model?: string;
  /** [DONE], response.completed / response.incomplete / response.failed, or an ollama line's done: true. */
  readonly done: boolean;
  /** Upstream error event. */
  readonly error?: UpstreamError;
  /** Data was not the JSON this format expects (reason text); the event is otherwise ignored. */
  readonly malformed?: string;
  /** True when the event carries model output (a non-empty delta or a generic document): the first such event is the "first token". */
  readonly content: boolean;
}

export type JsonObject = { readonly [key: string]: unknown };

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Choices, tool calls, output items and content parts per stream are bounded: each index is state
 * kept to the stream's end, and a hostile upstream could otherwise open millions (OpenAI's `n` tops
 * out at 128).
 */
export const MAX_INDEX = 127;

/** A non-negative integer index up to MAX_INDEX, or undefined. */
export function indexOf(value: unknown): number | undefined {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 && value <= MAX_INDEX
    ? value
    : undefined;
}

/**
 * The index of an array member: its own `index` when that is one, else its position in the array
 * (servers that omit or garble it); undefined beyond MAX_INDEX either way.
 */
export function memberIndex(value: unknown, position: number): number | undefined {
  const own = typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : position;
  return own <= MAX_INDEX ? own : undefined;
}

export const NOT_JSON: unique symbol = Symbol("not JSON");

/** An event's data parsed as JSON, or NOT_JSON. */
export function parseData(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return NOT_JSON;
  }
}

function count(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** Usage as OpenAI's chat/completions (prompt_tokens, …) or Responses (input_tokens, …) name it. */
export function tokenUsage(value: unknown): TokenUsage | undefined {
  if (!isObject(value)) return undefined;
  const usage: { promptTokens?: number; completionTokens?: number; totalTokens?: number } = {};
  const prompt = count(value.prompt_tokens) ?? count(value.input_tokens);
  const completion = count(value.completion_tokens) ?? count(value.output_tokens);
  const total = count(value.total_tokens);
  if (prompt !== undefined) usage.promptTokens = prompt;
  if (completion !== undefined) usage.completionTokens = completion;
  if (total !== undefined) usage.totalTokens = total;
  return Object.keys(usage).length > 0 ? usage : undefined;
}

function text(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  return typeof value === "number" && Number.isFinite(value) ? String(value) : undefined;
}

/**
 * An error as upstreams put it: an object with message (type, code optional; a numeric code is
 * given as text) or a bare string. Undefined for anything else (null included).
 */
export function upstreamError(value: unknown): UpstreamError | undefined {
  if (typeof value === "string") return { message: value };
  return isObject(value) ? errorOf(value) : undefined;
}

/** An error object's message (or the object as JSON when it has none), type and code. */
export function errorOf(value: JsonObject): UpstreamError {
  const error: { message: string; type?: string; code?: string } = {
    message: typeof value.message === "string" ? value.message : JSON.stringify(value),
  };
  // A Responses API error event's `type` is "error", the event's name: no error type.
  if (typeof value.type === "string" && value.type !== "error") error.type = value.type;
  const code = text(value.code);
  if (code !== undefined) error.code = code;
  return error;
}

/** What a reader makes of one event; the assembler turns it into an EventReading. */
export interface ReadingDraft {
  readonly deltas: TextDelta[];
  readonly completed: string[];
  readonly documents: unknown[];
  usage?: TokenUsage;
  model?: string;
  done: boolean;
  error?: UpstreamError;
  malformed?: string;
}

/** The bytes of assembled text a stream may hold; once spent, nothing more is kept. */
export class TextBudget {
  #left: number;
  #overflowed = false;

  constructor(maxBytes: number) {
    this.#left = maxBytes;
  }

  get overflowed(): boolean {
    return this.#overflowed;
  }

  /** Whether `text` may be kept; the first that does not fit ends keeping for good. */
  take(text: string): boolean {
    if (this.#overflowed) return false;
    const bytes = Buffer.byteLength(text, "utf8");
    if (bytes > this.#left) {
      this.#overflowed = true;
      return false;
    }
    this.#left -= bytes;
    return true;
  }
}

/** One format's reading of parsed event data into a non-streamed document. */
export interface FormatReader {
  /** `value` is the event's data, parsed (not [DONE], not an error); `event` its SSE event name (none for NDJSON). */
  read(value: unknown, event: string | undefined, draft: ReadingDraft): void;
  /** The non-streamed equivalent of everything read so far. */
  document(): unknown;
  /** The text targets of that document (each is completed when the stream is done). */
  targets(): string[];
}
