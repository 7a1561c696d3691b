// Which requests may be answered from the cache and which responses may be stored. Every
// "no" carries a reason from a fixed vocabulary (metric label, x-guard-cache-reason header).
import { requestsStream, streamFraming } from "../response-shape.js";
import type { Exchange, HeaderMap, ResponseInfo, RouteRef } from "../types.js";
import type { RouteCacheConfig } from "./config.js";
import type { ParsedBody } from "./key.js";

export const OPT_IN_VALUE = "allow";

/** Why a request was not looked up (nor stored). */
export type BypassReason = "cache_control" | "nondeterministic";

/** Why a looked-up request's response was not stored. */
export type StoreSkipReason =
  | "status"
  | "cache_control"
  /** A stream for a request that did not ask for one, or the other way round. */
  | "stream_mismatch"
  | "too_large"
  | "contract_violated"
  /** An event stream that did not end as a finished answer ([DONE], response.completed). */
  | "incomplete"
  /** An event stream that carried an error event. */
  | "stream_error"
  /** The exchange ended before its event stream did (client gone, reset, drain). */
  | "cancelled";

/** `no-store`, or `no-cache` unless `noCacheIsConvention` (an event stream's `no-cache`, see below). */
function forbidsCaching(headers: HeaderMap, noCacheIsConvention = false): boolean {
  const value = headers.get("cache-control");
  if (value === undefined) return false;
  return value.split(",").some((directive) => {
    const name = directive.split("=")[0]?.trim().toLowerCase();
    return name === "no-store" || (name === "no-cache" && !noCacheIsConvention);
  });
}

/** What can be decided from the request headers alone. */
export function bypassFromHeaders(headers: HeaderMap): BypassReason | undefined {
  if (forbidsCaching(headers)) return "cache_control";
  return undefined;
}

/**
 * The request asks for a stream (response-shape.ts requestsStream: `"stream": true`, an Accept of
 * one of the route's stream types, or Ollama's default). It is keyed apart from the same request
 * unstreamed, and only ever answered with a stored stream (and the other way round).
 */
export function wantsStream(body: ParsedBody, headers: HeaderMap, route: RouteRef): boolean {
  const requested = body.kind === "json" && isObject(body.value) ? body.value.stream : undefined;
  return requestsStream(requested, headers.get("accept"), route);
}

/**
 * A request is cacheable only if the same request would get the same answer: greedy decoding
 * (temperature 0), a fixed seed, or the client saying so with the opt-in header. Ollama's API puts
 * temperature and seed in `options`; no other API has that member, so it is read on every route.
 */
export function bypassFromBody(
  body: ParsedBody,
  headers: HeaderMap,
  config: RouteCacheConfig,
): BypassReason | undefined {
  const fields = body.kind === "json" && isObject(body.value) ? body.value : undefined;
  if (config.optInHeader !== "" && headers.get(config.optInHeader)?.trim().toLowerCase() === OPT_IN_VALUE)
    return undefined;
  if (fields === undefined) return "nondeterministic";
  const options = isObject(fields.options) ? fields.options : {};
  if (fields.temperature === 0 || options.temperature === 0) return undefined;
  if (typeof fields.seed === "number" || typeof options.seed === "number") return undefined;
  return "nondeterministic";
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Response checks possible before the body arrives; `stream`: the request asked for a stream. */
export function skipFromResponseHeaders(
  response: ResponseInfo,
  config: RouteCacheConfig,
  stream: boolean,
  route: RouteRef,
): StoreSkipReason | undefined {
  if (response.status !== 200) return "status";
  const streamed = streamFraming(response.headers.get("content-type"), route) !== undefined;
  // Event-stream servers (OpenAI, vLLM, the demo) send `Cache-Control: no-cache` on every stream,
  // to keep intermediaries from buffering or reusing the live stream: a convention of the transport,
  // not a judgement of the answer. On a stream only `no-store` keeps it out of the cache.
  if (forbidsCaching(response.headers, streamed)) return "cache_control";
  if (streamed !== stream) return "stream_mismatch";
  const declaredLength = Number(response.headers.get("content-length"));
  if (Number.isFinite(declaredLength) && declaredLength > config.maxEntryBytes) return "too_large";
  // An encoded (e.g. gzip) stream's last event cannot be read from its bytes, so it cannot be
  // told complete; nor is it copied.
  if (stream && !isIdentity(response.headers.get("content-encoding"))) return "incomplete";
  return undefined;
}

function isIdentity(contentEncoding: string | undefined): boolean {
  const value = contentEncoding?.trim().toLowerCase();
  return value === undefined || value === "" || value === "identity";
}

/** Response checks on the complete body; the contracts stage has already judged it by now. */
export function skipFromResponseBody(
  body: Uint8Array,
  exchange: Exchange,
  config: RouteCacheConfig,
): StoreSkipReason | undefined {
  if (body.length > config.maxEntryBytes) return "too_large";
  if (exchange.contract === "violated") return "contract_violated";
  return undefined;
}
