// gRPC's length-prefixed message framing (1 flag byte, 4-byte big-endian length, payload) over
// an HTTP/2 stream's DATA chunks, which split and join messages arbitrarily.

const PREFIX_BYTES = 5;

export type FrameResult =
  | { readonly type: "message"; readonly bytes: Buffer }
  | { readonly type: "compressed" }
  | { readonly type: "too_large"; readonly length: number }
  | { readonly type: "not_admitted"; readonly length: number };

/**
 * Splits a byte stream into gRPC messages. Each message is judged at its prefix, before its bytes
 * are held: larger than maxMessageBytes, or refused by admit (a memory budget), it goes no further.
 */
export class MessageDeframer {
  readonly #maxMessageBytes: number;
  readonly #admit: (length: number) => boolean;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** The message whose bytes are arriving was admitted. */
  #admitted = false;

  constructor(maxMessageBytes: number, admit: (length: number) => boolean = () => true) {
    this.#maxMessageBytes = maxMessageBytes;
    this.#admit = admit;
  }

  /** Bytes received but not yet returned as a message (a truncated frame when the stream ends). */
  get buffered(): number {
    return this.#pendingBytes;
  }

  /** Appends a chunk and returns every message it completes, in order; stops at the first refusal. */
  push(chunk: Buffer): FrameResult[] {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    const results: FrameResult[] = [];
    while (this.#pendingBytes >= PREFIX_BYTES) {
      const head = this.#peek(PREFIX_BYTES);
      const length = head.readUInt32BE(1);
      if (length > this.#maxMessageBytes) {
        results.push({ type: "too_large", length });
        return results;
      }
      // Envoy never compresses ext_proc messages; the guard advertises identity only.
      if (head[0] !== 0) {
        results.push({ type: "compressed" });
        return results;
      }
      if (!this.#admitted && !this.#admit(length)) {
        results.push({ type: "not_admitted", length });
        return results;
      }
      this.#admitted = true;
      if (this.#pendingBytes < PREFIX_BYTES + length) break;
      this.#admitted = false;
      const frame = this.#take(PREFIX_BYTES + length);
      results.push({ type: "message", bytes: frame.subarray(PREFIX_BYTES) });
    }
    return results;
  }

  #peek(bytes: number): Buffer {
    const first = this.#pending[0];
    if (first !== undefined && first.length >= bytes) return first;
    const joined = Buffer.concat(this.#pending);
    this.#pending = [joined];
    return joined;
  }

  #take(bytes: number): Buffer {
    const joined = this.#peek(bytes);
    const rest = joined.subarray(bytes);
    this.#pending = rest.length > 0 ? [rest] : [];
    this.#pendingBytes -= bytes;
    return joined.subarray(0, bytes);
  }
}

/** One gRPC message frame: an uncompressed prefix followed by the payload, in a single buffer. */
export function frameMessage(payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(PREFIX_BYTES + payload.length);
  frame[0] = 0;
  frame.writeUInt32BE(payload.length, 1);
  frame.set(payload, PREFIX_BYTES);
  return frame;
}
