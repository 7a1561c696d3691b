// What the cache keeps of a response, and its compact wire form for the shared tier.
import type { HeaderMap } from "../types.js";

export interface StoredResponse {
  readonly status: number;
  /** Allow-listed response headers only. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
  /**
   * The model version that produced it, when one was known: a lookup serves it only while its
   * pool's current version is this one (the key holds the version too; this is the second lock).
   */
  readonly modelVersion?: string;
}

export function allowListed(headers: HeaderMap, allow: readonly string[]): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const name of allow) {
    const value = headers.get(name);
    if (value !== undefined) kept[name] = value;
  }
  return kept;
}

/** Approximate memory held by a stored response, for the byte bound. */
export function storedSize(key: string, response: StoredResponse): number {
  let size = key.length + response.body.length + (response.modelVersion?.length ?? 0) + ENTRY_OVERHEAD;
  for (const [name, value] of Object.entries(response.headers)) size += name.length + value.length;
  return size;
}

// What an entry costs beyond its key, header and body bytes: the entry and header objects, the
// LRU's slots, the Uint8Array with its off-heap backing store and malloc's bookkeeping. Measured as
// RSS growth per entry over 40 000 stored responses of 100 B to 16 KB (docs/cache.md): body bytes +
// ~1.2 KB. Counting it keeps maxBytes a bound on the memory the tier really holds.
const ENTRY_OVERHEAD = 1024;

// Wire form: [format u8][meta length u32 BE][meta JSON: [status, ttlMs, headers, version]][body bytes].
// version is null when none was known; entries written before it existed have three meta items.
// The TTL the writer used travels with the value so a reader derives the entry's age from the
// remaining TTL Redis reports, without comparing clocks across hosts.
const FORMAT = 1;

export interface WireEntry {
  readonly response: StoredResponse;
  readonly ttlMs: number;
}

export function encodeEntry(entry: WireEntry): Buffer {
  const { status, headers, modelVersion } = entry.response;
  const meta = Buffer.from(JSON.stringify([status, entry.ttlMs, headers, modelVersion ?? null]), "utf8");
  const head = Buffer.allocUnsafe(5);
  head.writeUInt8(FORMAT, 0);
  head.writeUInt32BE(meta.length, 1);
  return Buffer.concat([head, meta, entry.response.body]);
}

/** Undefined for anything this version did not write (another format, corruption): a miss, not an error. */
export function decodeEntry(bytes: Buffer): WireEntry | undefined {
  if (bytes.length < 5 || bytes.readUInt8(0) !== FORMAT) return undefined;
  const metaLength = bytes.readUInt32BE(1);
  if (5 + metaLength > bytes.length) return undefined;
  let meta: unknown;
  try {
    meta = JSON.parse(bytes.subarray(5, 5 + metaLength).toString("utf8"));
  } catch {
    return undefined;
  }
  if (!Array.isArray(meta) || meta.length < 3 || meta.length > 4) return undefined;
  const [status, ttlMs, headers, modelVersion = null] = meta as unknown[];
  if (!Number.isInteger(status) || !Number.isInteger(ttlMs) || !isStringRecord(headers)) return undefined;
  if (modelVersion !== null && typeof modelVersion !== "string") return undefined;
  const body = new Uint8Array(bytes.subarray(5 + metaLength));
  return {
    ttlMs: ttlMs as number,
    response: { status: status as number, headers, body, ...(modelVersion === null ? {} : { modelVersion }) },
  };
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return (
    value !== null &&
    typeof value === "object" &&
    !Array.isArray(value) &&
    Object.values(value).every((item) => typeof item === "string")
  );
}
