// Whether a copied event stream (SSE) is a finished answer worth replaying: it must end the way its
// API ends a successful answer, and carry no error on the way. A stream the upstream broke off
// looks like any other to a byte copy; only its last event tells the difference.

/** How a copied stream ended: as a finished answer, broken off (or truncated), or with an error. */
export type StreamEnd = "complete" | "incomplete" | "error";

interface SseEvent {
  readonly name: string;
  readonly data: string;
}

/**
 * complete: the last event is OpenAI's `data: [DONE]` (chat, completions) or a Responses API
 * `response.completed`, ended by its blank line, and no event before it is an error (an SSE `error`
 * event, a JSON `{"error": …}` as vLLM sends before its [DONE], or `response.failed`).
 *
 * Runs once per stream the cache would store, on the event loop: only the events that mention an
 * error and the last ones are parsed, not every delta (a 1 MB chat stream: ~2.5 ms, not ~12 ms).
 */
export function streamEnd(body: Uint8Array): StreamEnd {
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString();
  if (holdsError(text)) return "error";
  const { events, unterminated } = lastEvents(text);
  const last = events.at(-1);
  if (unterminated || last === undefined) return "incomplete";
  return last.data === "[DONE]" || typeOf(last) === "response.completed" ? "complete" : "incomplete";
}

// The blank line that ends an event, in each line ending SSE allows. Each is a blank line wherever
// it occurs (a match never straddles a line's own CRLF), so it always marks an event boundary.
const BLANK_LINES: readonly string[] = ["\r\n\r\n", "\n\n", "\r\r"];

/** Where the event holding `at` begins: just past the last blank line ending at or before it. */
function eventStart(text: string, at: number): number {
  let start = 0;
  for (const blank of BLANK_LINES) {
    const found = text.lastIndexOf(blank, at - blank.length);
    if (found >= 0) start = Math.max(start, found + blank.length);
  }
  return start;
}

/** Where the event holding `at` ends: just past its blank line, or the end of the text. */
function eventEnd(text: string, at: number): number {
  let end = text.length;
  for (const blank of BLANK_LINES) {
    const found = text.indexOf(blank, at);
    if (found >= 0) end = Math.min(end, found + blank.length);
  }
  return end;
}

// Text every error event holds (`"error"`, `event: error`, ...); an event without it cannot be one.
// Few and short, since each is a scan of the whole stream.
const ERROR_MENTIONS: readonly string[] = ["error", "response.failed"];

function holdsError(text: string): boolean {
  for (const mention of ERROR_MENTIONS) {
    for (let at = text.indexOf(mention); at >= 0; ) {
      const end = eventEnd(text, at + mention.length);
      if (parseEvents(text.slice(eventStart(text, at), end)).events.some(isError)) return true;
      at = text.indexOf(mention, end);
    }
  }
  return false;
}

/** The stream's last events: a window at its end, from an event boundary, grown until it holds one. */
function lastEvents(text: string): { events: SseEvent[]; unterminated: boolean } {
  for (let size = 4096; size < text.length; size *= 4) {
    const parsed = parseEvents(text.slice(eventStart(text, text.length - size)));
    if (parsed.events.length > 0) return parsed;
  }
  return parseEvents(text);
}

/**
 * The events of an SSE body (https://html.spec.whatwg.org/multipage/server-sent-events.html): lines
 * end with CRLF, LF or CR; a blank line dispatches the event when it has data; `:` starts a comment.
 * unterminated: bytes follow the last blank line, an event a client would never dispatch.
 */
function parseEvents(text: string): { events: SseEvent[]; unterminated: boolean } {
  const events: SseEvent[] = [];
  const lines = text.split(/\r\n|\r|\n/);
  // split leaves what follows the last line ending: "" when the text ends with one.
  const tail = lines.pop() ?? "";
  let name = "";
  let data: string[] = [];
  let pending = false;
  for (const line of lines) {
    if (line === "") {
      if (data.length > 0) events.push({ name, data: data.join("\n") });
      name = "";
      data = [];
      pending = false;
      continue;
    }
    pending = true;
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  return { events, unterminated: pending || tail !== "" };
}

// An event's JSON is parsed only when its text mentions what is looked for: most events are
// content deltas, and a stored stream may hold thousands of them.
function parsedIfMentions(event: SseEvent, mentions: readonly string[]): Record<string, unknown> | undefined {
  if (!mentions.some((mention) => event.data.includes(mention))) return undefined;
  try {
    const value: unknown = JSON.parse(event.data);
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function typeOf(event: SseEvent): string | undefined {
  if (event.name !== "") return event.name;
  const type = parsedIfMentions(event, ['"type"'])?.type;
  return typeof type === "string" ? type : undefined;
}

const ERROR_TYPES: readonly string[] = ["error", "response.failed"];

function isError(event: SseEvent): boolean {
  if (ERROR_TYPES.includes(event.name)) return true;
  const value = parsedIfMentions(event, ['"error"', '"response.failed"']);
  if (value === undefined) return false;
  return (value.error !== undefined && value.error !== null) || ERROR_TYPES.includes(String(value.type));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
