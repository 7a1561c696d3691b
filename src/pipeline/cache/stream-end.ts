// Whether a copied stream (SSE, or a route's NDJSON) is a finished answer worth replaying: it must
// end the way its API ends a successful answer, and carry no error on the way. A stream the
// upstream broke off looks like any other to a byte copy; only its last event tells the difference.
import type { StreamEvent } from "../../streams/framer.js";
import { newFramer } from "../../streams/framing.js";
import { isObject, NOT_JSON, parseData } from "../../streams/reading.js";
import type { ResponseStream } from "../response-shape.js";

/** How a copied stream ended: as a finished answer, broken off (or truncated), or with an error. */
export type StreamEnd = "complete" | "incomplete" | "error";

/**
 * complete, SSE: the last event is OpenAI's `data: [DONE]` (chat, completions) or a Responses API
 * `response.completed`, ended by its blank line, and no event before it is an error (an SSE `error`
 * event, a JSON `{"error": …}` as vLLM sends before its [DONE], or `response.failed`).
 *
 * complete, NDJSON: no line is an error (`{"error": …}`, as Ollama reports one mid-stream) and the
 * stream ends at a line end with a JSON line: for Ollama, a `done: true` one; generic NDJSON has no
 * closing line, so its last line being a whole JSON document is all a copy can tell.
 *
 * One pass over the events (the streams library's framer); only events that mention an error, a
 * type or done, and the last one, are parsed as JSON, not every delta.
 */
export function streamEnd(body: Uint8Array, stream: ResponseStream): StreamEnd {
  const framer = newFramer(stream.framing, { maxEventBytes: Math.max(1, body.byteLength) });
  const events = [...framer.push(body), ...framer.end()];
  let last: StreamEvent | undefined;
  for (const event of events) {
    if (event.data === undefined) continue;
    if (isError(event)) return "error";
    last = event;
  }
  if (framer.midEvent || last === undefined) return "incomplete";
  return endsWell(last, stream) ? "complete" : "incomplete";
}

function endsWell(last: StreamEvent, stream: ResponseStream): boolean {
  if (stream.framing === "sse") return last.data === "[DONE]" || typeOf(last) === "response.completed";
  const value = parseData(last.data ?? "");
  if (value === NOT_JSON) return false;
  return stream.format !== "ollama" || (isObject(value) && value.done === true);
}

// An event's JSON is parsed only when its text mentions what is looked for: most events are
// content deltas, and a stored stream may hold thousands of them.
function parsedIfMentions(data: string, mentions: readonly string[]): Readonly<Record<string, unknown>> | undefined {
  if (!mentions.some((mention) => data.includes(mention))) return undefined;
  const value = parseData(data);
  return isObject(value) ? value : undefined;
}

function typeOf(event: StreamEvent): string | undefined {
  if (event.event !== undefined && event.event !== "") return event.event;
  const type = parsedIfMentions(event.data ?? "", ['"type"'])?.type;
  return typeof type === "string" ? type : undefined;
}

const ERROR_TYPES: readonly string[] = ["error", "response.failed"];

function isError(event: StreamEvent): boolean {
  if (event.event !== undefined && ERROR_TYPES.includes(event.event)) return true;
  const value = parsedIfMentions(event.data ?? "", ['"error"', '"response.failed"']);
  if (value === undefined) return false;
  return (value.error !== undefined && value.error !== null) || ERROR_TYPES.includes(String(value.type));
}
