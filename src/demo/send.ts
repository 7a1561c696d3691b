// How the demo model puts an answer on the wire: JSON in the layout and encoding a test asked for,
// server-sent events, or a response cut off mid-body like a crashing upstream.
import type { ServerResponse } from "node:http";
import { gzipSync } from "node:zlib";
import type { JsonValue } from "../pipeline/types.js";
import type { Answer } from "./endpoints.js";

/**
 * How a JSON answer is put on the wire (x-demo-layout, x-demo-encoding): the same value pretty-
 * printed, with every object's keys reversed, or gzip-compressed, as other servers send it.
 */
export interface Wire {
  readonly layout: "compact" | "pretty" | "reordered";
  readonly gzip: boolean;
}

export const PLAIN_WIRE: Wire = { layout: "compact", gzip: false };

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

function sseFrames(events: readonly JsonValue[]): string[] {
  return [...events.map((event) => `data: ${JSON.stringify(event)}\n\n`), "data: [DONE]\n\n"];
}

const SSE_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache" } as const;

export function sendAnswer(
  res: ServerResponse,
  result: Answer,
  headers: Readonly<Record<string, string>>,
  wire: Wire,
): void {
  if (result.kind === "json") {
    sendJson(res, result.status, result.body, headers, wire);
    return;
  }
  res.writeHead(200, { ...headers, ...SSE_HEADERS });
  for (const frame of sseFrames(result.events)) res.write(frame);
  res.end();
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
    res.writeHead(200, { ...headers, ...SSE_HEADERS });
    partial = sseFrames(result.events)[0] ?? "";
  }
  res.write(partial, () => res.socket?.destroy());
}
