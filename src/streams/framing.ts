// Which framing a streamed answer's content type announces, and the framer that reads it: the one
// place a stream's wire format is chosen. Server-Sent Events (text/event-stream) are a stream
// wherever they come; NDJSON only where the caller says its media types are streams (a route
// declares them), since application/x-ndjson is also a plain download format.
import type { EventFramer, FramerOptions } from "./framer.js";
import { NdjsonFramer } from "./ndjson.js";
import { SseFramer } from "./sse.js";

export type Framing = "sse" | "ndjson";

const SSE_MEDIA_TYPE = "text/event-stream";

/** A content type's media type: lower case, parameters (charset, …) dropped; undefined when absent or empty. */
export function mediaTypeOf(contentType: string | undefined): string | undefined {
  const type = contentType?.split(";")[0]?.trim().toLowerCase();
  return type === "" ? undefined : type;
}

/** The framing of a body of this content type: SSE, NDJSON when `ndjsonTypes` lists its media type, else none. */
export function framingOf(contentType: string | undefined, ndjsonTypes: readonly string[]): Framing | undefined {
  const type = mediaTypeOf(contentType);
  if (type === SSE_MEDIA_TYPE) return "sse";
  return type !== undefined && ndjsonTypes.includes(type) ? "ndjson" : undefined;
}

export function newFramer(framing: Framing, options: FramerOptions = {}): EventFramer {
  return framing === "sse" ? new SseFramer(options) : new NdjsonFramer(options);
}

/**
 * The record that ends a stream the guard cuts, carrying `json` (one line of JSON, as JSON.stringify
 * writes it): SSE, an event named `error` (OpenAI's SDKs raise its data as an APIError); NDJSON, the
 * object as the stream's last line (Ollama's clients raise a line with an `error` member).
 */
export function errorRecord(framing: Framing, json: string): string {
  if (/[\r\n]/.test(json)) throw new RangeError("an error record's JSON is one line");
  return framing === "sse" ? `event: error\ndata: ${json}\n\n` : `${json}\n`;
}
