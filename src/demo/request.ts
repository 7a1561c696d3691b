// Reading a request to the demo model: its body (bounded), its JSON, its headers, and the
// per-request test hooks (x-demo-*) that inject latency, errors and wire variations.
import type { IncomingMessage } from "node:http";
import type { JsonValue } from "../pipeline/types.js";
import { headerValue } from "../util/header-value.js";
import type { Wire } from "./send.js";
import { MAX_DELAY_MS } from "./settings.js";

export interface Overrides {
  readonly variant: string | undefined;
  readonly version: string | undefined;
  readonly latencyMs: number | undefined;
  /** Stream pacing for this request (x-demo-first-token-ms, x-demo-inter-token-ms); unset → the settings'. */
  readonly firstTokenMs: number | undefined;
  readonly interTokenMs: number | undefined;
  readonly status: number | undefined;
  readonly reset: boolean;
  readonly task: string | undefined;
  readonly fence: boolean;
  readonly wire: Wire;
}

export type BodyRead =
  | { readonly ok: true; readonly bytes: Buffer }
  | { readonly ok: false; readonly tooLarge: boolean };

/** Reads the whole body; past `limit` bytes it keeps draining (so a 413 can be sent) but stores nothing. */
export function readBody(req: IncomingMessage, limit: number): Promise<BodyRead> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.once("end", () =>
      resolve(size <= limit ? { ok: true, bytes: Buffer.concat(chunks) } : { ok: false, tooLarge: true }),
    );
    // A client that leaves mid-upload never sends "end"; whichever event comes first settles it.
    req.once("error", () => resolve({ ok: false, tooLarge: false }));
    req.once("close", () => resolve({ ok: false, tooLarge: false }));
  });
}

export function parseJson(bytes: Buffer): JsonValue | undefined {
  try {
    return JSON.parse(bytes.toString("utf8")) as JsonValue;
  } catch {
    return undefined;
  }
}

const MS_HEADERS = ["x-demo-latency-ms", "x-demo-first-token-ms", "x-demo-inter-token-ms"] as const;

/** Per-request test hooks; a string is the 400 message for a malformed one. */
export function readOverrides(req: IncomingMessage): Overrides | string {
  const header = (name: string): string | undefined => {
    const text = headerValue(req.headers[name]);
    return text === "" ? undefined : text;
  };
  const milliseconds: Partial<Record<(typeof MS_HEADERS)[number], number>> = {};
  for (const name of MS_HEADERS) {
    const text = header(name);
    if (text === undefined) continue;
    const value = Number(text);
    if (!(Number.isFinite(value) && value >= 0 && value <= MAX_DELAY_MS)) {
      return `${name} must be a number of milliseconds from 0 to ${MAX_DELAY_MS}`;
    }
    milliseconds[name] = value;
  }
  const forced = header("x-demo-status");
  const status = forced === undefined ? undefined : Number(forced);
  if (status !== undefined && !(Number.isInteger(status) && status >= 400 && status <= 599)) {
    return "x-demo-status must be an HTTP error status from 400 to 599";
  }
  const layout = header("x-demo-layout") ?? "compact";
  if (layout !== "compact" && layout !== "pretty" && layout !== "reordered") {
    return "x-demo-layout must be compact, pretty or reordered";
  }
  const encoding = header("x-demo-encoding");
  if (encoding !== undefined && encoding !== "gzip") return "x-demo-encoding must be gzip";
  return {
    variant: header("x-demo-variant"),
    version: header("x-demo-version"),
    latencyMs: milliseconds["x-demo-latency-ms"],
    firstTokenMs: milliseconds["x-demo-first-token-ms"],
    interTokenMs: milliseconds["x-demo-inter-token-ms"],
    status,
    reset: header("x-demo-reset") === "1",
    task: header("x-demo-task"),
    fence: header("x-demo-fence") === "1",
    wire: { layout, gzip: encoding === "gzip", trailers: header("x-demo-trailers") === "1" },
  };
}

export function flattenHeaders(req: IncomingMessage): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    const text = headerValue(value);
    if (text !== undefined) flat[name] = text;
  }
  return flat;
}
