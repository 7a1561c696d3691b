// What kind of body a response announces, for the stages that choose at its headers how to see it:
// the one place that tells a stream from a plain body. text/event-stream is a stream on every route;
// NDJSON only on a route that declares it (routes[].streaming.ndjson), elsewhere a plain body.
import { detectFormat, type StreamFormat } from "../streams/formats.js";
import { type Framing, framingOf } from "../streams/framing.js";
import type { Exchange, HeaderMap, RouteRef } from "./types.js";

/** A streamed answer: its framing, and the reading its events get (a hint for SSE, see formats.ts). */
export interface ResponseStream {
  readonly framing: Framing;
  readonly format: StreamFormat;
}

const NO_NDJSON: readonly string[] = [];

/** The framing a body of this content type has on this route, or undefined for a plain body. */
export function streamFraming(contentType: string | undefined, route: RouteRef): Framing | undefined {
  return framingOf(contentType, route.streaming?.ndjson?.contentTypes ?? NO_NDJSON);
}

/** The stream a response is on this exchange's route, or undefined when its body is a plain one. */
export function responseStream(
  headers: HeaderMap,
  exchange: Pick<Exchange, "route" | "request">,
): ResponseStream | undefined {
  const framing = streamFraming(headers.get("content-type"), exchange.route);
  if (framing === undefined) return undefined;
  const format =
    framing === "sse" ? detectFormat(exchange.request.path) : (exchange.route.streaming?.ndjson?.format ?? "generic");
  return { framing, format };
}

/**
 * Whether a request asks for a streamed answer: `"stream": true` in its JSON body (`requested`), or an
 * Accept header naming one of the route's stream types (text/event-stream, a declared NDJSON type).
 * Ollama streams unless told not to, so on a route whose NDJSON reads as ollama an absent `stream`
 * is a request for a stream, and only `"stream": false` (whatever the Accept header) is not.
 */
export function requestsStream(requested: unknown, accept: string | undefined, route: RouteRef): boolean {
  if (requested === true) return true;
  if (route.streaming?.ndjson?.format === "ollama") return requested === undefined;
  return accept?.split(",").some((range) => streamFraming(range, route) !== undefined) === true;
}
