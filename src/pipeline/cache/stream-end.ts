// Whether a copied event stream (SSE) is a finished answer worth replaying: it must end the way its
// API ends a successful answer, and carry no error on the way. A stream the upstream broke off
// looks like any other to a byte copy; only its last event tells the difference.
import { type SseEvent, SseFramer } from "../../streams/sse.js";

/** How a copied stream ended: as a finished answer, broken off (or truncated), or with an error. */
export type StreamEnd = "complete" | "incomplete" | "error";

/**
 * complete: the last event is OpenAI's `data: [DONE]` (chat, completions) or a Responses API
 * `response.completed`, ended by its blank line, and no event before it is an error (an SSE `error`
 * event, a JSON `{"error": …}` as vLLM sends before its [DONE], or `response.failed`).
 *
 * One pass over the events (the streams library's framer); only events that mention an error or a
 * type are parsed as JSON, not every delta.
 */
export function streamEnd(body: Uint8Array): StreamEnd {
  const framer = new SseFramer({ maxEventBytes: Math.max(1, body.byteLength) });
  const events = [...framer.push(body), ...framer.end()];
  let last: SseEvent | undefined;
  for (const event of events) {
    if (event.data === undefined) continue;
    if (isError(event)) return "error";
    last = event;
  }
  if (framer.midEvent || last === undefined) return "incomplete";
  return last.data === "[DONE]" || typeOf(last) === "response.completed" ? "complete" : "incomplete";
}

// An event's JSON is parsed only when its text mentions what is looked for: most events are
// content deltas, and a stored stream may hold thousands of them.
function parsedIfMentions(data: string, mentions: readonly string[]): Record<string, unknown> | undefined {
  if (!mentions.some((mention) => data.includes(mention))) return undefined;
  try {
    const value: unknown = JSON.parse(data);
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function typeOf(event: SseEvent): string | undefined {
  if (event.event !== undefined && event.event !== "") return event.event;
  const type = parsedIfMentions(event.data ?? "", ['"type"'])?.type;
  return typeof type === "string" ? type : undefined;
}

const ERROR_TYPES: readonly string[] = ["error", "response.failed"];

function isError(event: SseEvent): boolean {
  if (event.event !== undefined && ERROR_TYPES.includes(event.event)) return true;
  const value = parsedIfMentions(event.data ?? "", ['"error"', '"response.failed"']);
  if (value === undefined) return false;
  return (value.error !== undefined && value.error !== null) || ERROR_TYPES.includes(String(value.type));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
