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
  /**
   * The admitted message whose bytes are arriving, copied in chunk by chunk as they come: joining
   * a large message's thousands of DATA chunks at its end would be one synchronous copy (60 MiB:
   * ~80 ms of blocked event loop, page faults included) where this spreads it over the chunks.
   */
  #message: { readonly bytes: Buffer; filled: number } | undefined;

  constructor(maxMessageBytes: number, admit: (length: number) => boolean = () => true) {
    this.#maxMessageBytes = maxMessageBytes;
    this.#admit = admit;
  }

  /** Bytes received but not yet returned as a message (a truncated frame when the stream ends). */
  get buffered(): number {
    return this.#pendingBytes + (this.#message === undefined ? 0 : PREFIX_BYTES + this.#message.filled);
  }

  append(chunk: Buffer): void {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    this.#fill();
  }

  /**
   * The next complete message, or why the next one is refused (returned again on every call: the
   * stream is over); undefined until more bytes arrive. One at a time, so a chunk of many small
   * messages costs the caller nothing until it asks for each.
   */
  next(): FrameResult | undefined {
    if (this.#message === undefined) {
      if (this.#pendingBytes < PREFIX_BYTES) return undefined;
      const head = this.#peek(PREFIX_BYTES);
      const length = head.readUInt32BE(1);
      if (length > this.#maxMessageBytes) return { type: "too_large", length };
      // Envoy never compresses ext_proc messages; the guard advertises identity only.
      if (head[0] !== 0) return { type: "compressed" };
      if (!this.#admit(length)) return { type: "not_admitted", length };
      this.#take(PREFIX_BYTES);
      // Most messages arrive whole, in one chunk: returned as a view of it, nothing copied.
      if (this.#pendingBytes >= length) return { type: "message", bytes: this.#take(length) };
      this.#message = { bytes: Buffer.allocUnsafe(length), filled: 0 };
      this.#fill();
    }
    const message = this.#message;
    if (message.filled < message.bytes.length) return undefined;
    this.#message = undefined;
    return { type: "message", bytes: message.bytes };
  }

  /** Moves pending bytes into the message being assembled, up to its length. */
  #fill(): void {
    const message = this.#message;
    while (message !== undefined && message.filled < message.bytes.length) {
      const chunk = this.#pending[0];
      if (chunk === undefined) return;
      const copied = chunk.copy(message.bytes, message.filled, 0, message.bytes.length - message.filled);
      message.filled += copied;
      this.#pendingBytes -= copied;
      if (copied === chunk.length) this.#pending.shift();
      else this.#pending[0] = chunk.subarray(copied);
    }
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
