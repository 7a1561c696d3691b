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
