// Cache keys. A key names one (route, tenant, request, model epoch): two requests share an
// entry only if nothing that can change the answer differs between them.
import * as crypto from "node:crypto";
import { NOT_JSON, parseJsonBody } from "../json-body.js";
import type { JsonValue } from "../types.js";

/** The request after parsing: JSON bodies are compared by meaning, anything else byte for byte. */
export type ParsedBody =
  | { readonly kind: "json"; readonly value: JsonValue }
  | { readonly kind: "raw"; readonly bytes: Uint8Array };

export function parseBody(bytes: Uint8Array): ParsedBody {
  if (bytes.length === 0) return { kind: "raw", bytes };
  const value = parseJsonBody(bytes);
  if (value === NOT_JSON) return { kind: "raw", bytes };
  // JSON.parse accepts any depth, but canonicalJson recurses: a body nested 100 000 deep would
  // overflow the stack. Such bodies are keyed byte for byte instead (still exact, just not
  // normalised).
  return nestedDeeperThan(value, MAX_CANONICAL_DEPTH) ? { kind: "raw", bytes } : { kind: "json", value };
}

const MAX_CANONICAL_DEPTH = 256;

function nestedDeeperThan(root: JsonValue, limit: number): boolean {
  const pending: { readonly value: JsonValue; readonly depth: number }[] = [{ value: root, depth: 0 }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const { value, depth } = next;
    if (value === null || typeof value !== "object") continue;
    if (depth >= limit) return true;
    for (const child of Array.isArray(value) ? value : Object.values(value))
      pending.push({ value: child, depth: depth + 1 });
  }
  return false;
}

/**
 * JSON with object keys sorted at every depth, so {"a":1,"b":2} and {"b":2,"a":1} agree.
 * Excluded fields are dropped at the top level only: that is where request envelopes put
 * per-caller bookkeeping (OpenAI's `user`, `metadata`); nested fields are model input.
 */
export function canonicalJson(value: JsonValue, excludeTopLevel: ReadonlySet<string> = new Set()): string {
  return encode(value, excludeTopLevel);
}

// Appends to one string instead of building part arrays and joining them: keying is on every
// cacheable request's path, and this halves its cost on a 2 KiB chat body.
function encode(value: JsonValue, exclude: ReadonlySet<string>): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) {
    let out = "[";
    for (let index = 0; index < value.length; index++) {
      if (index > 0) out += ",";
      out += encode(value[index] as JsonValue, EMPTY);
    }
    return `${out}]`;
  }
  let out = "{";
  for (const key of Object.keys(value).sort()) {
    if (exclude.has(key)) continue;
    if (out.length > 1) out += ",";
    out += `${JSON.stringify(key)}:${encode(value[key] as JsonValue, EMPTY)}`;
  }
  return `${out}}`;
}

const EMPTY: ReadonlySet<string> = new Set();

// crypto.hash (Node >= 20.12) hashes a string in one call, without a Hash object: ~2.5x faster
// than createHash().update().digest() for the short inputs here. The digest is the same.
const oneShotHash = (crypto as { hash?: (algorithm: string, data: string, encoding: "base64url") => string }).hash;

function sha256(data: string): string {
  return oneShotHash === undefined
    ? crypto.createHash("sha256").update(data).digest("base64url")
    : oneShotHash("sha256", data, "base64url");
}

export interface KeyInput {
  readonly route: string;
  readonly method: string;
  readonly path: string;
  /** The exchange's tenant (identity: a hash, or "anonymous"). */
  readonly tenant: string;
  /** Values of the route's vary headers, in configured order ("" when absent). */
  readonly vary: readonly string[];
  readonly body: ParsedBody;
  readonly excludeFields: ReadonlySet<string>;
  /**
   * The request asks for an event stream (policy.ts wantsStream). Keyed on its own as well as in
   * the body: `Accept: text/event-stream` alone is not in the body, and the configuration never
   * lets `stream` or `stream_options` be excluded from it (config.ts). Absent: false.
   */
  readonly stream?: boolean;
}

/**
 * Hash of everything but the epoch. The epoch is applied separately (entryKey) because the
 * entry is filed under the epoch its response was produced in, which may differ from the one
 * current when the request was looked up.
 */
export function requestDigest(input: KeyInput): string {
  // A JSON array frames each field unambiguously: no value can shift into its neighbour.
  // Unstreamed requests keep the head they had before streams were cacheable, so their entries
  // (shared through Redis with sidecars of that version) keep their keys.
  const fields = [input.route, input.method, input.path, input.tenant, input.vary];
  const head = JSON.stringify(input.stream === true ? [...fields, "stream"] : fields);
  if (input.body.kind === "json") return sha256(`${head}json\0${canonicalJson(input.body.value, input.excludeFields)}`);
  return crypto.createHash("sha256").update(head).update("raw\0").update(input.body.bytes).digest("base64url");
}

export function entryKey(digest: string, epoch: string): string {
  return sha256(`${digest}\0${epoch}`);
}
