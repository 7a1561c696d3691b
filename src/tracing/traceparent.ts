// The W3C Trace Context `traceparent` header (https://www.w3.org/TR/trace-context/#traceparent-header)
// of the request Envoy asks the guard about. Read here without the OpenTelemetry SDK: the logs carry
// its trace id even when the guard's own tracing is off.

export interface RemoteParent {
  readonly traceId: string;
  readonly spanId: string;
  /** The trace-flags byte; bit 0 is "sampled". */
  readonly flags: number;
}

// Version 00 has exactly these four fields; a later version may append more after a dash.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);

/** A W3C trace context as it travels: the traceparent and tracestate header values. */
export interface TraceContext {
  readonly traceparent: string;
  readonly tracestate?: string;
}

/**
 * The context the guard's spans continue: the one of the ext_proc call itself when Envoy's tracer
 * put it in the call's gRPC metadata (its ext_proc span, so the guard's spans nest under it), else
 * the request's own headers (a client's context, which Envoy passes on to ext_proc untouched).
 */
export function parentContextOf(request: {
  readonly callTrace?: TraceContext;
  readonly headers: { get(name: string): string | undefined };
}): TraceContext | undefined {
  if (request.callTrace !== undefined && parseTraceparent(request.callTrace.traceparent) !== undefined)
    return request.callTrace;
  const traceparent = request.headers.get("traceparent");
  if (traceparent === undefined) return undefined;
  const tracestate = request.headers.get("tracestate");
  return tracestate === undefined ? { traceparent } : { traceparent, tracestate };
}

/** Undefined for an absent or invalid header; a repeated header (joined with ", ") is invalid. */
export function parseTraceparent(header: string | undefined): RemoteParent | undefined {
  if (header === undefined) return undefined;
  const match = TRACEPARENT.exec(header.trim());
  if (match === null) return undefined;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?,
  ];
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return { traceId, spanId, flags: Number.parseInt(flags, 16) };
}
