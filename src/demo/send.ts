// How the demo model puts an answer on the wire: JSON in the layout and encoding a test asked for,
// server-sent events or NDJSON lines (paced like token decoding when asked), or a response cut off
// mid-body like a crashing upstream.
import type { ServerResponse } from "node:http";
import { gzipSync } from "node:zlib";
import type { JsonValue } from "../pipeline/types.js";
import { type BatcherClock, realClock } from "./batcher.js";
import type { Answer, StreamAnswer } from "./endpoints.js";

/**
 * How an answer is put on the wire (x-demo-layout, x-demo-encoding, x-demo-trailers): a JSON value
 * pretty-printed, with every object's keys reversed, or gzip-compressed, as other servers send it;
 * a stream ended with trailers.
 */
export interface Wire {
  readonly layout: "compact" | "pretty" | "reordered";
  readonly gzip: boolean;
  /** A streamed answer ends with HTTP/1.1 trailers (STREAM_TRAILER), as HTTP/2 and gRPC-style servers' do. */
  readonly trailers: boolean;
}

export const PLAIN_WIRE: Wire = { layout: "compact", gzip: false, trailers: false };

/** The trailer a streamed answer ends with when its wire asks for trailers. */
export const STREAM_TRAILER = { "x-demo-stream-end": "completed" } as const;

export function sendJson(
  res: ServerResponse,
  status: number,
  body: JsonValue,
  headers: Readonly<Record<string, string>>,
  wire = PLAIN_WIRE,
): void {
  const text =
    wire.layout === "pretty"
      ? JSON.stringify(body, null, 2)
      : JSON.stringify(wire.layout === "reordered" ? reversedKeys(body) : body);
  const bytes = wire.gzip ? gzipSync(text) : Buffer.from(text);
  res.writeHead(status, {
    ...headers,
    "content-type": "application/json",
    "content-length": bytes.length,
    ...(wire.gzip ? { "content-encoding": "gzip" } : {}),
  });
  res.end(bytes);
}

function reversedKeys(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(reversedKeys);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value)
      .reverse()
      .map(([key, child]) => [key, reversedKeys(child)]),
  );
}

/**
 * A stream's frames, one per event, and what closes it: `data: [DONE]` ("done" framing), or nothing
 * ("typed": each event named by its `type` member, the last event ends the stream; "ndjson": one
 * line per event, the last one ends the stream).
 */
function streamFrames(stream: StreamAnswer): { readonly frames: string[]; readonly closing: string } {
  if (stream.framing === "ndjson")
    return { frames: stream.events.map((event) => `${JSON.stringify(event)}\n`), closing: "" };
  if (stream.framing === "done") {
    return { frames: stream.events.map((event) => `data: ${JSON.stringify(event)}\n\n`), closing: "data: [DONE]\n\n" };
  }
  const frames = stream.events.map((event) => {
    const type = typeof event === "object" && event !== null && !Array.isArray(event) ? event.type : undefined;
    const name = typeof type === "string" ? `event: ${type}\n` : "";
    return `${name}data: ${JSON.stringify(event)}\n\n`;
  });
  return { frames, closing: "" };
}

const SSE_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache" } as const;
// What Ollama sends with a streamed answer: no cache-control.
const NDJSON_HEADERS = { "content-type": "application/x-ndjson" } as const;

function streamHeaders(stream: StreamAnswer): Readonly<Record<string, string>> {
  return stream.framing === "ndjson" ? NDJSON_HEADERS : SSE_HEADERS;
}

/** How a streamed answer's events are spaced in time; all zero writes every frame at once. */
export interface Pacing {
  /** After the headers (sent at once), before the first event. */
  readonly firstTokenMs: number;
  /** Between one event and the next; a closing `data: [DONE]` goes out with the last event. */
  readonly interTokenMs: number;
}

export const NO_PACING: Pacing = { firstTokenMs: 0, interTokenMs: 0 };

/** How a stream ended: every frame written and the response ended, or the client went away first. */
export type StreamEnd = "completed" | "cancelled";

/**
 * Sends a stream of JSON events in its framing, paced like a model decoding tokens: the headers at
 * once, then each event on a timer. A client (or Envoy) that goes away mid-stream, or `stop` (the
 * server closing), stops the writing and its timer; the promise says which happened.
 */
export function sendStream(
  res: ServerResponse,
  stream: StreamAnswer,
  headers: Readonly<Record<string, string>>,
  pacing: Pacing,
  options: { readonly clock?: BatcherClock; readonly stop?: AbortSignal; readonly trailers?: boolean } = {},
): Promise<StreamEnd> {
  const { clock = realClock, stop, trailers = false } = options;
  // HTTP/1.1 sends trailers only when the headers announce them (and the body is chunked).
  const announced = trailers ? { trailer: Object.keys(STREAM_TRAILER).join(", ") } : {};
  res.writeHead(200, { ...headers, ...streamHeaders(stream), ...announced });
  const end = (last?: string): void => {
    if (trailers) res.addTrailers(STREAM_TRAILER);
    res.end(last);
  };
  const { frames, closing } = streamFrames(stream);
  if (pacing.firstTokenMs === 0 && pacing.interTokenMs === 0) {
    for (const frame of frames) res.write(frame);
    end(closing);
    return Promise.resolve("completed");
  }
  res.flushHeaders();
  // One write per event; a closing [DONE] rides with the last one, as servers send it right after the final chunk.
  const writes = [...frames];
  if (writes.length === 0) writes.push(closing);
  else writes[writes.length - 1] += closing;
  return new Promise((resolve) => {
    let cancelTimer: (() => void) | undefined;
    let next = 0;
    const settle = (end: StreamEnd): void => {
      cancelTimer?.();
      cancelTimer = undefined;
      res.off("close", cancel);
      stop?.removeEventListener("abort", cancel);
      resolve(end);
    };
    const cancel = (): void => settle("cancelled");
    const writeNext = (): void => {
      cancelTimer = undefined;
      // Gone, but its "close" event is still on its way: settle now rather than write into a dead socket.
      if (res.destroyed || res.socket === null || res.socket.destroyed) {
        cancel();
        return;
      }
      res.write(writes[next] ?? "");
      next++;
      if (next < writes.length) {
        cancelTimer = clock.schedule(pacing.interTokenMs, writeNext);
        return;
      }
      end();
      settle("completed");
    };
    if (stop?.aborted === true) {
      cancel();
      return;
    }
    res.once("close", cancel);
    stop?.addEventListener("abort", cancel, { once: true });
    if (pacing.firstTokenMs === 0) writeNext();
    else cancelTimer = clock.schedule(pacing.firstTokenMs, writeNext);
  });
}

/** Sends the headers and part of the body, then drops the connection like a crashing upstream. */
export function resetMidResponse(res: ServerResponse, result: Answer, headers: Readonly<Record<string, string>>): void {
  let partial: string;
  if (result.kind === "json") {
    const text = JSON.stringify(result.body);
    res.writeHead(result.status, {
      ...headers,
      "content-type": "application/json",
      "content-length": Buffer.byteLength(text),
    });
    partial = text.slice(0, Math.max(1, Math.floor(text.length / 2)));
  } else {
    res.writeHead(200, { ...headers, ...streamHeaders(result) });
    const { frames, closing } = streamFrames(result);
    partial = frames[0] ?? closing;
  }
  res.write(partial, () => res.socket?.destroy());
}
