// The ext_proc messages as the codec in proto.ts decodes them (camelCase, enums as strings,
// oneof discriminators), typed to the subset the guard reads and writes, and the translation
// between them and the plain values pipeline stages see.
import type { Edits, JsonValue, Reply } from "../pipeline/types.js";

export interface WireHeaderValue {
  key?: string;
  value?: string;
  rawValue?: Uint8Array;
}

export interface WireHttpHeaders {
  headers?: { headers?: WireHeaderValue[] };
  endOfStream?: boolean;
}

export interface WireHttpBody {
  body?: Uint8Array;
  endOfStream?: boolean;
}

export type FrameKind =
  | "requestHeaders"
  | "requestBody"
  | "requestTrailers"
  | "responseHeaders"
  | "responseBody"
  | "responseTrailers";

export interface ProcessingRequest {
  request?: FrameKind;
  requestHeaders?: WireHttpHeaders;
  requestBody?: WireHttpBody;
  requestTrailers?: unknown;
  responseHeaders?: WireHttpHeaders;
  responseBody?: WireHttpBody;
  responseTrailers?: unknown;
  observabilityMode?: boolean;
  /** The filter's request_attributes, on the request headers message: a Struct per filter name. */
  attributes?: Record<string, WireStruct>;
}

type HeaderSendMode = "DEFAULT" | "SEND" | "SKIP";
type BodySendMode = "NONE" | "STREAMED" | "BUFFERED" | "BUFFERED_PARTIAL" | "FULL_DUPLEX_STREAMED";

export interface WireProcessingMode {
  requestHeaderMode: HeaderSendMode;
  responseHeaderMode: HeaderSendMode;
  requestBodyMode: BodySendMode;
  responseBodyMode: BodySendMode;
  requestTrailerMode: HeaderSendMode;
  responseTrailerMode: HeaderSendMode;
}

export interface WireHeaderMutation {
  setHeaders?: { header: { key: string; rawValue: Uint8Array }; appendAction: "OVERWRITE_IF_EXISTS_OR_ADD" }[];
  removeHeaders?: string[];
}

export interface WireCommonResponse {
  status?: "CONTINUE";
  headerMutation?: WireHeaderMutation;
  /** In FULL_DUPLEX_STREAMED mode: the bytes to send on in place of the chunk(s) answered. */
  bodyMutation?: { streamedResponse: { body: Uint8Array; endOfStream: boolean } };
  clearRouteCache?: boolean;
}

export interface WireStruct {
  fields: Record<string, WireValue>;
}
export type WireValue =
  | { nullValue: "NULL_VALUE" }
  | { numberValue: number }
  | { stringValue: string }
  | { boolValue: boolean }
  | { structValue: WireStruct }
  | { listValue: { values: WireValue[] } };

export interface ProcessingResponse {
  requestHeaders?: { response: WireCommonResponse };
  requestBody?: { response: WireCommonResponse };
  requestTrailers?: { headerMutation?: WireHeaderMutation };
  responseHeaders?: { response: WireCommonResponse };
  responseBody?: { response: WireCommonResponse };
  responseTrailers?: { headerMutation?: WireHeaderMutation };
  immediateResponse?: {
    status: { code: number };
    headers?: WireHeaderMutation;
    body?: Uint8Array;
    details?: string;
  };
  dynamicMetadata?: WireStruct;
  modeOverride?: WireProcessingMode;
  overrideMessageTimeout?: { seconds: number; nanos: number };
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Envoy 1.40 sends header values as raw bytes; older versions used the string field. */
export function decodeHeaders(wire: WireHttpHeaders | undefined): Map<string, string> {
  const headers = new Map<string, string>();
  for (const entry of wire?.headers?.headers ?? []) {
    if (entry.key === undefined) continue;
    const key = entry.key.toLowerCase();
    const value =
      entry.rawValue !== undefined && entry.rawValue.length > 0 ? decoder.decode(entry.rawValue) : (entry.value ?? "");
    const previous = headers.get(key);
    headers.set(key, previous === undefined ? value : `${previous}, ${value}`);
  }
  return headers;
}

/**
 * Envoy's request attributes as plain values: every filter's struct merged (keyed by attribute
 * path), scalars as strings; structured values (route metadata) are not read. Undefined when Envoy
 * sent none.
 */
export function decodeAttributes(attributes: Record<string, WireStruct> | undefined): Map<string, string> | undefined {
  if (attributes === undefined) return undefined;
  const values = new Map<string, string>();
  for (const struct of Object.values(attributes)) {
    for (const [name, value] of Object.entries(struct.fields ?? {})) {
      if ("stringValue" in value) values.set(name, value.stringValue);
      else if ("numberValue" in value) values.set(name, String(value.numberValue));
      else if ("boolValue" in value) values.set(name, String(value.boolValue));
    }
  }
  return values.size === 0 ? undefined : values;
}

export function headerMutation(
  set: Readonly<Record<string, string>> | undefined,
  remove?: readonly string[],
): WireHeaderMutation | undefined {
  const setHeaders = Object.entries(set ?? {}).map(([key, value]) => ({
    header: { key, rawValue: encoder.encode(value) },
    appendAction: "OVERWRITE_IF_EXISTS_OR_ADD" as const,
  }));
  if (setHeaders.length === 0 && (remove === undefined || remove.length === 0)) return undefined;
  return { setHeaders, removeHeaders: remove === undefined ? [] : [...remove] };
}

export function commonResponse(edits: Edits | undefined, allowRouteCacheClear: boolean): WireCommonResponse {
  const response: WireCommonResponse = { status: "CONTINUE" };
  const mutation = headerMutation(edits?.setHeaders, edits?.removeHeaders);
  if (mutation !== undefined) response.headerMutation = mutation;
  // Envoy rejects clear_route_cache on the response path; only request-phase answers carry it.
  if (allowRouteCacheClear && edits?.clearRouteCache === true) response.clearRouteCache = true;
  return response;
}

/**
 * The answer to streamed body chunks (FULL_DUPLEX_STREAMED): any number of chunks may be answered
 * by one, and endOfStream ends the response, also before the upstream finished (Envoy then resets
 * the upstream request, so the model stops generating).
 */
export function streamedBody(body: Uint8Array, endOfStream: boolean): ProcessingResponse {
  return {
    responseBody: { response: { status: "CONTINUE", bodyMutation: { streamedResponse: { body, endOfStream } } } },
  };
}

/** The answer to a response's trailers, with the stages' edits to them. */
export function trailersResponse(edits: Edits): ProcessingResponse {
  const mutation = headerMutation(edits.setHeaders, edits.removeHeaders);
  return { responseTrailers: mutation === undefined ? {} : { headerMutation: mutation } };
}

export function immediateResponse(reply: Reply): ProcessingResponse {
  const body = typeof reply.body === "string" ? encoder.encode(reply.body) : reply.body;
  return {
    immediateResponse: {
      status: { code: reply.status },
      headers: headerMutation({ ...reply.headers, "x-guard-reason": reply.reason }) ?? {},
      body,
      details: `inference_guard_${reply.reason.replace(/[^a-z0-9_]/gi, "_")}`,
    },
  };
}

export function toWireValue(value: JsonValue): WireValue {
  if (value === null) return { nullValue: "NULL_VALUE" };
  if (typeof value === "number") return { numberValue: value };
  if (typeof value === "string") return { stringValue: value };
  if (typeof value === "boolean") return { boolValue: value };
  if (Array.isArray(value)) return { listValue: { values: value.map(toWireValue) } };
  return { structValue: toWireStruct(value) };
}

export function toWireStruct(object: Readonly<Record<string, JsonValue>>): WireStruct {
  const fields: Record<string, WireValue> = {};
  for (const [key, value] of Object.entries(object)) fields[key] = toWireValue(value);
  return { fields };
}
