// Server-Sent Events framing at the byte level, per the WHATWG HTML "event stream" rules: lines end
// in "\r\n", "\n" or "\r"; a blank line ends an event; ":" starts a comment; a field with no colon
// has an empty value; one space after the colon is dropped; a UTF-8 BOM at the stream's start is
// skipped.
//
// Why hand-written and not eventsource-parser (or any SSE parser): the guard forwards the
// upstream's exact bytes and holds back or releases whole events, so it needs each event's raw
// byte span as received; parsers hand over decoded fields only and do not expose it.
//
// Byte conservation: every byte pushed is in exactly one returned event's `raw` or in pending(), in
// order, so the raws of all returned events followed by pending() are the input, byte for byte.
// Blank lines that end no event (separators: a blank line with no field or comment line before it)
// and a leading BOM are the first bytes of the next event's `raw`.
//
// Cost: each byte is looked at once (a scan position is kept across pushes), lines are decoded as
// they complete (a complete line never splits a UTF-8 character), and the buffer is compacted only
// after an event is returned, by moving the bytes that follow it (at most one chunk's worth).

export interface SseEvent {
  /** The exact bytes of this event as received, including its terminating blank line. */
  readonly raw: Uint8Array;
  /** `event:` field, if any (the last one). */
  readonly event?: string;
  /** `data:` lines joined with "\n" (WHATWG rules: one leading space after the colon removed); undefined when the block had no data field (comment-only heartbeat, or only id/retry). */
  readonly data?: string;
  /** `id:` field of this block, if any (a value with U+0000 is ignored, as WHATWG says). */
  readonly id?: string;
  /** `retry:` field of this block when it is all ASCII digits. */
  readonly retry?: number;
}

export interface SseFramerOptions {
  /** Largest event, in bytes with its separators and terminating blank line; default 1 MiB. */
  readonly maxEventBytes?: number;
}

export const DEFAULT_MAX_EVENT_BYTES = 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;
const BOM = [0xef, 0xbb, 0xbf] as const;
const INITIAL_CAPACITY = 4096;
/** A buffer grown past this is given back once the bytes it holds fit a quarter of it. */
const SHRINK_ABOVE = 64 * 1024;

// Not fatal: invalid UTF-8 decodes to U+FFFD. The BOM is handled on bytes (only at the stream's
// start), so the decoder must not drop a U+FEFF that starts a later line.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

interface MutableEvent {
  raw: Uint8Array;
  event?: string;
  data?: string;
  id?: string;
  retry?: number;
}

export class SseFramer {
  readonly #maxEventBytes: number;
  #buffer = new Uint8Array(INITIAL_CAPACITY);
  /** Bytes held in #buffer. */
  #length = 0;
  /** Where the unfinished event's raw starts (separators and a BOM before it included). */
  #eventStart = 0;
  /** Next byte to look at. */
  #scan = 0;
  /** Start of the line being read. */
  #lineStart = 0;
  #bomChecked = false;
  #overflowed = false;
  // The unfinished event, from its complete lines.
  #lines = 0;
  #event: string | undefined;
  #data: string[] | undefined;
  #id: string | undefined;
  #retry: number | undefined;

  constructor(options: SseFramerOptions = {}) {
    const max = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
    if (!(max >= 1)) throw new RangeError(`maxEventBytes must be at least 1, not ${max}`);
    this.#maxEventBytes = max;
  }

  /**
   * Set once an event grows beyond maxEventBytes (unfinished, or completed within one chunk); push()
   * then returns [] and keeps nothing more (the caller treats the stream as unparseable). The events
   * before it were returned; pending() holds the bytes from the overflowing event's start up to and
   * including the chunk that overflowed, so they are not lost, and keeps returning them.
   */
  get overflowed(): boolean {
    return this.#overflowed;
  }

  /** Feeds the next chunk; returns the events completed by it, in order. Bytes of an unfinished event are kept. */
  push(chunk: Uint8Array): SseEvent[] {
    if (this.#overflowed) return [];
    this.#append(chunk);
    return this.#frame(false);
  }

  /**
   * The stream has ended: a final "\r" is a line end after all (push() waits for the byte after a
   * "\r" to know whether it is half of "\r\n"). Returns the event that completes, if any; what is
   * left in pending() is an event the stream ended in the middle of (or separators).
   */
  end(): SseEvent[] {
    if (this.#overflowed) return [];
    return this.#frame(true);
  }

  /** Bytes received but not yet part of a complete event (a stream that ends mid-event). */
  pending(): Uint8Array {
    return this.#buffer.slice(this.#eventStart, this.#length);
  }

  /**
   * Whether pending() holds part of an event: a field or comment line, finished or not (or the
   * framer overflowed). False when it holds nothing, or only separator blank lines and a BOM, which
   * a stream may well end with.
   */
  get midEvent(): boolean {
    if (this.#overflowed || this.#lines > 0) return true;
    const unfinished = this.#length - this.#lineStart;
    return unfinished > 1 || (unfinished === 1 && this.#buffer[this.#lineStart] !== CR);
  }

  #append(chunk: Uint8Array): void {
    const needed = this.#length + chunk.length;
    if (needed > this.#buffer.length) {
      const grown = new Uint8Array(Math.max(needed, this.#buffer.length * 2));
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
    }
    this.#buffer.set(chunk, this.#length);
    this.#length = needed;
  }

  #frame(final: boolean): SseEvent[] {
    const events: SseEvent[] = [];
    if (!this.#bomChecked && !this.#skipBom(final)) return events;
    const buffer = this.#buffer;
    const length = this.#length;
    let i = this.#scan;
    while (i < length) {
      const byte = buffer[i];
      if (byte !== LF && byte !== CR) {
        i++;
        continue;
      }
      let next = i + 1;
      if (byte === CR) {
        // A "\r" last in the buffer may be the first half of "\r\n": wait for the next byte.
        if (next === length && !final) break;
        if (next < length && buffer[next] === LF) next++;
      }
      if (i > this.#lineStart) this.#line(this.#lineStart, i);
      else if (this.#lines > 0) {
        // A blank line after fields or comments: the event is complete.
        if (next - this.#eventStart > this.#maxEventBytes) {
          this.#overflow();
          return events;
        }
        events.push(this.#dispatch(next));
      }
      // else a separator: its bytes stay at the front of the next event's raw.
      i = next;
      this.#lineStart = next;
    }
    this.#scan = i;
    if (this.#length - this.#eventStart > this.#maxEventBytes) this.#overflow();
    else if (this.#eventStart > 0) this.#compact();
    return events;
  }

  /** False while the buffered bytes are still a prefix of a BOM (the next push decides). */
  #skipBom(final: boolean): boolean {
    const held = Math.min(this.#length, BOM.length);
    for (let i = 0; i < held; i++) {
      if (this.#buffer[i] !== BOM[i]) {
        this.#bomChecked = true;
        return true;
      }
    }
    if (held < BOM.length) {
      this.#bomChecked = final;
      return final;
    }
    this.#scan = BOM.length;
    this.#lineStart = BOM.length;
    this.#bomChecked = true;
    return true;
  }

  /** A complete, non-blank line [start, end). */
  #line(start: number, end: number): void {
    this.#lines++;
    const buffer = this.#buffer;
    if (buffer[start] === COLON) return; // a comment
    let colon = start;
    while (colon < end && buffer[colon] !== COLON) colon++;
    const name = decoder.decode(buffer.subarray(start, colon));
    let valueStart = colon < end ? colon + 1 : end;
    if (valueStart < end && buffer[valueStart] === SPACE) valueStart++;
    const value = decoder.decode(buffer.subarray(valueStart, end));
    switch (name) {
      case "data":
        if (this.#data === undefined) this.#data = [value];
        else this.#data.push(value);
        break;
      case "event":
        this.#event = value;
        break;
      case "id":
        if (!value.includes("\0")) this.#id = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.#retry = Number(value);
        break;
      // Other field names are ignored.
    }
  }

  /** Ends the unfinished event at `end` (after its blank line) and returns it. */
  #dispatch(end: number): SseEvent {
    const event: MutableEvent = { raw: this.#buffer.slice(this.#eventStart, end) };
    if (this.#event !== undefined) event.event = this.#event;
    if (this.#data !== undefined) event.data = this.#data.join("\n");
    if (this.#id !== undefined) event.id = this.#id;
    if (this.#retry !== undefined) event.retry = this.#retry;
    this.#eventStart = end;
    this.#lines = 0;
    this.#event = undefined;
    this.#data = undefined;
    this.#id = undefined;
    this.#retry = undefined;
    return event;
  }

  #overflow(): void {
    this.#overflowed = true;
    this.#data = undefined;
  }

  /** Moves the unfinished event to the buffer's start (into a smaller buffer when it is now oversized). */
  #compact(): void {
    const start = this.#eventStart;
    const kept = this.#length - start;
    if (this.#buffer.length > SHRINK_ABOVE && kept * 4 <= this.#buffer.length) {
      const smaller = new Uint8Array(Math.max(INITIAL_CAPACITY, kept * 2));
      smaller.set(this.#buffer.subarray(start, this.#length));
      this.#buffer = smaller;
    } else this.#buffer.copyWithin(0, start, this.#length);
    this.#length = kept;
    this.#scan -= start;
    this.#lineStart -= start;
    this.#eventStart = 0;
  }
}
