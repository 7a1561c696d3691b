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
// Cost: each byte is looked at once, lines are decoded as they complete (a complete line never
// splits a UTF-8 character); the buffering is BufferedFramer's (framer.ts).
import { BufferedFramer, type FramerOptions, type StreamEvent } from "./framer.js";

export interface SseEvent extends StreamEvent {
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

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;
const BOM = [0xef, 0xbb, 0xbf] as const;

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

export class SseFramer extends BufferedFramer<SseEvent> {
  #bomChecked = false;
  /** Dropping an oversized event's bytes until the blank line that ends it (overflow "skip"). */
  #skipping = false;
  // The unfinished event, from its complete lines.
  #lines = 0;
  #event: string | undefined;
  #data: string[] | undefined;
  #id: string | undefined;
  #retry: number | undefined;

  constructor(options: FramerOptions = {}) {
    super(options);
  }

  /**
   * Whether pending() holds part of an event: a field or comment line, finished or not (or the
   * framer overflowed). False when it holds nothing, or only separator blank lines and a BOM, which
   * a stream may well end with.
   */
  get midEvent(): boolean {
    if (this.overflow || this.#skipping || this.#lines > 0) return true;
    const unfinished = this.length - this.lineStart;
    return unfinished > 1 || (unfinished === 1 && this.buffer[this.lineStart] !== CR);
  }

  /**
   * `final`, the stream has ended (end()): a last "\r" is a line end after all. What is left in
   * pending() then is an event the stream ended in the middle of (or separators).
   */
  protected frame(final: boolean): SseEvent[] {
    const events: SseEvent[] = [];
    if (!this.#bomChecked && !this.#skipBom(final)) return events;
    const buffer = this.buffer;
    const length = this.length;
    let i = this.scan;
    while (i < length) {
      const byte = buffer[i];
      if (byte !== LF && byte !== CR) {
        i++;
        continue;
      }
      const next = this.#afterLineEnd(i, final);
      if (next < 0) break;
      if (i > this.lineStart) {
        // A skipped event's lines are not read: only its end is looked for.
        if (!this.#skipping) this.#line(this.lineStart, i);
      } else if (this.#lines > 0) {
        // A blank line after fields or comments: the event is complete.
        if (this.#skipping) {
          this.#skipping = false;
          this.#forget(next);
        } else if (next - this.eventStart <= this.maxEventBytes) events.push(this.#dispatch(next));
        else if (this.skipOversized) {
          this.skippedEvents++;
          this.#forget(next);
        } else {
          this.#overflow();
          return events;
        }
      }
      // else a separator: its bytes stay at the front of the next event's raw.
      i = next;
      this.lineStart = next;
    }
    this.scan = i;
    if (this.#skipping) this.#dropScanned();
    else if (this.length - this.eventStart <= this.maxEventBytes) {
      if (this.eventStart > 0) this.compact();
    } else if (this.skipOversized) {
      this.skippedEvents++;
      this.#skipping = true;
      this.#dropScanned();
    } else this.#overflow();
    return events;
  }

  /**
   * Skipping an oversized event: forgets the bytes looked at, but for the last byte of a line not
   * yet ended (so a line end next is not taken for a blank line) and a "\r" that may be half of
   * "\r\n". The event stays unfinished (a field line was read), so its blank line ends the skip.
   */
  #dropScanned(): void {
    const keep = this.lineStart < this.scan ? this.scan - 1 : this.scan;
    this.#forget(keep);
    this.lineStart = keep;
    this.#lines = 1;
    this.compact();
  }

  /**
   * The offset after the line end at `i` ("\r\n", "\n" or "\r"); -1 for a "\r" last in the buffer
   * before the stream's end, which may be the first half of "\r\n": push() waits for the next byte.
   */
  #afterLineEnd(i: number, final: boolean): number {
    const next = i + 1;
    if (this.buffer[i] !== CR) return next;
    if (next === this.length) return final ? next : -1;
    return this.buffer[next] === LF ? next + 1 : next;
  }

  /** False while the buffered bytes are still a prefix of a BOM (the next push decides). */
  #skipBom(final: boolean): boolean {
    const held = Math.min(this.length, BOM.length);
    for (let i = 0; i < held; i++) {
      if (this.buffer[i] !== BOM[i]) {
        this.#bomChecked = true;
        return true;
      }
    }
    if (held < BOM.length) {
      this.#bomChecked = final;
      return final;
    }
    this.scan = BOM.length;
    this.lineStart = BOM.length;
    this.#bomChecked = true;
    return true;
  }

  /** A complete, non-blank line [start, end). */
  #line(start: number, end: number): void {
    this.#lines++;
    const buffer = this.buffer;
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
    const event: MutableEvent = { raw: this.buffer.slice(this.eventStart, end) };
    if (this.#event !== undefined) event.event = this.#event;
    if (this.#data !== undefined) event.data = this.#data.join("\n");
    if (this.#id !== undefined) event.id = this.#id;
    if (this.#retry !== undefined) event.retry = this.#retry;
    this.#forget(end);
    return event;
  }

  /** Starts the next event at `end`, with nothing read of it. */
  #forget(end: number): void {
    this.eventStart = end;
    this.#lines = 0;
    this.#event = undefined;
    this.#data = undefined;
    this.#id = undefined;
    this.#retry = undefined;
  }

  #overflow(): void {
    this.overflow = true;
    this.#data = undefined;
  }
}
