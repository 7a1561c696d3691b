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

  append(chunk: Buffer): void {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
  }

  /**
   * The next complete message, or why the next one is refused (returned again on every call: the
   * stream is over); undefined until more bytes arrive. One at a time, so a chunk of many small
   * messages costs the caller nothing until it asks for each.
   */
  next(): FrameResult | undefined {
    if (this.#pendingBytes < PREFIX_BYTES) return undefined;
    const head = this.#peek(PREFIX_BYTES);
    const length = head.readUInt32BE(1);
    if (length > this.#maxMessageBytes) return { type: "too_large", length };
    // Envoy never compresses ext_proc messages; the guard advertises identity only.
    if (head[0] !== 0) return { type: "compressed" };
    if (!this.#admitted && !this.#admit(length)) return { type: "not_admitted", length };
    this.#admitted = true;
    if (this.#pendingBytes < PREFIX_BYTES + length) return undefined;
    this.#admitted = false;
    return { type: "message", bytes: this.#take(PREFIX_BYTES + length).subarray(PREFIX_BYTES) };
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
