// The request body as JSON, parsed once per exchange: complexity scores it, the cache keys it and
// the contracts stage reads its model from it, and each used to parse it on its own (three
// JSON.parse calls and three copies of a 2 KiB body's tree per request in bench d). The pipeline
// hands every stage the same Uint8Array, so the parse is memoised on that object.
// The value is shared between stages: readers must never modify it.
import type { JsonValue } from "./types.js";

export const NOT_JSON: unique symbol = Symbol("not JSON");

const parsedBodies = new WeakMap<Uint8Array, JsonValue | typeof NOT_JSON>();

/** Invalid UTF-8 decodes to U+FFFD (as TextDecoder and Buffer#toString both do). */
export function parseJsonBody(body: Uint8Array): JsonValue | typeof NOT_JSON {
  let value = parsedBodies.get(body);
  if (value === undefined) {
    try {
      value = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8")) as JsonValue;
    } catch {
      value = NOT_JSON;
    }
    parsedBodies.set(body, value);
  }
  return value;
}
