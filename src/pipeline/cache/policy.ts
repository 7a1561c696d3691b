// Which requests may be answered from the cache and which responses may be stored. Every
// "no" carries a reason from a fixed vocabulary (metric label, x-guard-cache-reason header).
import { isEventStream } from "../response-shape.js";
import type { Exchange, HeaderMap, ResponseInfo } from "../types.js";
import type { RouteCacheConfig } from "./config.js";
import type { ParsedBody } from "./key.js";

export const OPT_IN_VALUE = "allow";

/** Why a request was not looked up (nor stored). */
export type BypassReason = "cache_control" | "nondeterministic" | "stream";

/** Why a looked-up request's response was not stored. */
export type StoreSkipReason = "status" | "cache_control" | "stream" | "too_large" | "contract_violated";

function forbidsCaching(headers: HeaderMap): boolean {
  const value = headers.get("cache-control");
  if (value === undefined) return false;
  return value.split(",").some((directive) => {
    const name = directive.split("=")[0]?.trim().toLowerCase();
    return name === "no-store" || name === "no-cache";
  });
}

/** What can be decided from the request headers alone. */
export function bypassFromHeaders(headers: HeaderMap): BypassReason | undefined {
  if (forbidsCaching(headers)) return "cache_control";
  // Streams are not cached (docs/cache.md): a replay would arrive all at once, defeating the
  // client's reason for streaming, and a stream cut short looks complete to a buffered store.
  if (isEventStream(headers.get("accept"))) return "stream";
  return undefined;
}

/**
 * A request is cacheable only if the same request would get the same answer: greedy decoding
 * (temperature 0), a fixed seed, or the client saying so with the opt-in header.
 */
export function bypassFromBody(
  body: ParsedBody,
  headers: HeaderMap,
  config: RouteCacheConfig,
): BypassReason | undefined {
  const fields = body.kind === "json" && isObject(body.value) ? body.value : undefined;
  if (fields?.stream === true) return "stream";
  if (config.optInHeader !== "" && headers.get(config.optInHeader)?.trim().toLowerCase() === OPT_IN_VALUE)
    return undefined;
  if (fields === undefined) return "nondeterministic";
  if (fields.temperature === 0) return undefined;
  if (typeof fields.seed === "number") return undefined;
  return "nondeterministic";
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Response checks possible before the body arrives. */
export function skipFromResponseHeaders(response: ResponseInfo, config: RouteCacheConfig): StoreSkipReason | undefined {
  if (response.status !== 200) return "status";
  if (forbidsCaching(response.headers)) return "cache_control";
  if (isEventStream(response.headers.get("content-type"))) return "stream";
  const declaredLength = Number(response.headers.get("content-length"));
  if (Number.isFinite(declaredLength) && declaredLength > config.maxEntryBytes) return "too_large";
  return undefined;
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
