// Streamed inference answers, read event by event: the text each event appends to which output
// target, and the equivalent NON-streamed response document, so the guard can check a streamed
// answer with the same contract as a non-streamed one.
//
// Formats: openai.chat (chat.ts), openai.completions (chat.ts), openai.responses (responses.ts),
// ollama (ollama.ts: /api/chat and /api/generate NDJSON lines), and generic: any other stream whose
// events (SSE `data:` payloads, NDJSON lines) are each one JSON value, each a complete document of
// its own (predict-style routes). The events come from either framer (framer.ts): the readers see
// an event's data and name, never its framing.
//
// The format: detectFormat(path) gives a hint from the request path. When the hint is generic, the
// first event whose data is JSON decides once: `"object": "chat.completion.chunk"` is openai.chat,
// `"object": "text_completion"` with a `choices` array is openai.completions, a `type` (or SSE
// event name) starting with "response." is openai.responses; anything else stays generic. A hint
// other than generic is kept whatever the events look like.
//
// The ollama format is never detected: a route declares it (an NDJSON route's reading).
//
// In every format: `data: [DONE]` ends the stream (an ollama line with `done: true` too); an event named `error` or whose JSON object has
// an `error` member (an object or a string) is an upstream error and nothing else; data that is
// empty or blank, and blocks without data (heartbeats), are no reading at all; data that is not
// JSON is `malformed`. Nothing here throws on what the upstream sends.
import { ChatReader, CompletionsReader } from "./chat.js";
import type { StreamEvent } from "./framer.js";
import { OllamaReader } from "./ollama.js";
import {
  type EventReading,
  type FormatReader,
  isObject,
  NOT_JSON,
  parseData,
  type ReadingDraft,
  type StreamFormat,
  TextBudget,
  type TokenUsage,
  tokenUsage,
  type UpstreamError,
  upstreamError,
} from "./reading.js";
import { ResponsesReader } from "./responses.js";

export type { EventReading, StreamFormat, TextDelta, TokenUsage, UpstreamError } from "./reading.js";

export const DEFAULT_MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;

export interface StreamLimits {
  /** Assembled text kept, in UTF-8 bytes (default 4 MiB); beyond it deltas are reported but not kept. */
  readonly maxDocumentBytes?: number;
}

/**
 * The format a request path suggests (query string and trailing "/" ignored, case-insensitive):
 * a path ending in /chat/completions is openai.chat, in /completions openai.completions, in
 * /responses openai.responses (so /v1/…, /openai/v1/… and Azure's deployment paths match); any
 * other is generic.
 */
export function detectFormat(path: string): StreamFormat {
  const bare = path
    .replace(/[?#].*$/s, "")
    .replace(/\/+$/, "")
    .toLowerCase();
  if (bare.endsWith("/chat/completions")) return "openai.chat";
  if (bare.endsWith("/completions")) return "openai.completions";
  if (bare.endsWith("/responses")) return "openai.responses";
  return "generic";
}

/** The format the first JSON event of a stream hinted generic shows, if it is obviously one. */
function formatOfFirstEvent(value: unknown, event: string | undefined): StreamFormat {
  if (isObject(value)) {
    if (value.object === "chat.completion.chunk") return "openai.chat";
    if (value.object === "text_completion" && Array.isArray(value.choices)) return "openai.completions";
    if (typeof value.type === "string" && value.type.startsWith("response.")) return "openai.responses";
  }
  return event?.startsWith("response.") === true ? "openai.responses" : "generic";
}

/** Generic: each event's value is a complete document. */
class GenericReader implements FormatReader {
  read(value: unknown, _event: string | undefined, draft: ReadingDraft): void {
    draft.documents.push(value);
    if (!isObject(value)) return;
    if (typeof value.model === "string") draft.model = value.model;
    const usage = tokenUsage(value.usage);
    if (usage !== undefined) draft.usage = usage;
  }

  document(): unknown {
    return undefined;
  }

  targets(): string[] {
    return [];
  }
}

function newReader(format: StreamFormat, budget: TextBudget): FormatReader {
  switch (format) {
    case "openai.chat":
      return new ChatReader(budget);
    case "openai.completions":
      return new CompletionsReader(budget);
    case "openai.responses":
      return new ResponsesReader(budget);
    case "ollama":
      return new OllamaReader(budget);
    case "generic":
      return new GenericReader();
  }
}

/** The error an event reports: its SSE name is `error`, or its JSON has an `error` member. */
function errorIn(value: unknown, data: string, event: string | undefined): UpstreamError | undefined {
  const error = isObject(value) ? upstreamError(value.error) : undefined;
  if (error !== undefined || event !== "error") return error;
  return upstreamError(value) ?? { message: data };
}

export class StreamAssembler {
  #format: StreamFormat;
  #decided: boolean;
  readonly #budget: TextBudget;
  #reader: FormatReader;
  readonly #completed = new Set<string>();
  #usage: TokenUsage | undefined;
  #model: string | undefined;
  #done = false;
  #contentEvents = 0;

  constructor(format: StreamFormat, limits: StreamLimits = {}) {
    this.#format = format;
    this.#decided = format !== "generic";
    this.#budget = new TextBudget(limits.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES);
    this.#reader = newReader(format, this.#budget);
  }

  /** The hint given, or the format the first event showed (see the top of this file). */
  get format(): StreamFormat {
    return this.#format;
  }

  /** The latest usage reported (vLLM's continuous usage is cumulative). */
  get usage(): TokenUsage | undefined {
    return this.#usage;
  }

  /** The latest model name seen. */
  get model(): string | undefined {
    return this.#model;
  }

  /** Set by [DONE], response.completed / .incomplete / .failed, an ollama line's done: true; stays set. */
  get done(): boolean {
    return this.#done;
  }

  /** Assembled text reached maxDocumentBytes: document() lacks what came after (deltas are still reported). */
  get overflowed(): boolean {
    return this.#budget.overflowed;
  }

  /** Output pieces seen so far (content events), a proxy for output tokens when usage never comes. */
  get contentEvents(): number {
    return this.#contentEvents;
  }

  read(event: StreamEvent): EventReading {
    const draft: ReadingDraft = { deltas: [], completed: [], documents: [], done: false };
    const data = event.data;
    if (data !== undefined && data.trim() !== "") this.#readData(data, event.event, draft);
    return this.#reading(draft);
  }

  /** The non-streamed equivalent of everything read so far (chat/completions/responses/ollama). undefined for generic. */
  document(): unknown {
    return this.#reader.document();
  }

  #readData(data: string, event: string | undefined, draft: ReadingDraft): void {
    if (data.trim() === "[DONE]") {
      draft.done = true;
      return;
    }
    const value = parseData(data);
    if (value === NOT_JSON) {
      if (event === "error") draft.error = { message: data };
      else draft.malformed = "data is not JSON";
      return;
    }
    if (!this.#decided) {
      this.#decided = true;
      this.#format = formatOfFirstEvent(value, event);
      if (this.#format !== "generic") this.#reader = newReader(this.#format, this.#budget);
    }
    const error = errorIn(value, data, event);
    if (error !== undefined) draft.error = error;
    else this.#reader.read(value, event, draft);
  }

  #reading(draft: ReadingDraft): EventReading {
    if (draft.malformed !== undefined) {
      return { deltas: [], completed: [], documents: [], done: false, malformed: draft.malformed, content: false };
    }
    if (draft.done) {
      this.#done = true;
      draft.completed.push(...this.#reader.targets());
    }
    const completed = draft.completed.filter((target) => {
      if (this.#completed.has(target)) return false;
      this.#completed.add(target);
      return true;
    });
    const content = draft.deltas.length > 0 || draft.documents.length > 0;
    if (content) this.#contentEvents++;
    const reading: { -readonly [K in keyof EventReading]: EventReading[K] } = {
      deltas: draft.deltas,
      completed,
      documents: draft.documents,
      done: draft.done,
      content,
    };
    if (draft.usage !== undefined) this.#usage = reading.usage = draft.usage;
    if (draft.model !== undefined) this.#model = reading.model = draft.model;
    if (draft.error !== undefined) reading.error = draft.error;
    return reading;
  }
}
