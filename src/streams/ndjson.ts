// Newline-delimited JSON framing (NDJSON, JSON Lines: application/x-ndjson, application/jsonl), at
// the byte level: one event per line; a line ends in "\n" (a "\r" before it is part of the line end,
// as "\r\n" writers send it); a lone "\r" is no line end (JSON counts it as whitespace); lines of
// only spaces, tabs and "\r" are ignored; the last line may go without its "\n" (JSON Lines allows
// it), so end() completes it. The line's text, decoded, is the event's `data`; whether it is JSON
// is the reader's business, not the framer's.
//
// Same contract as the SSE framer (framer.ts): splits anywhere, a UTF-8 character included (a line
// is decoded only once complete); byte conservation (blank lines are the first bytes of the next
// event's `raw`); a per-event byte cap that stops framing (overflowed) or skips the line.
import { BufferedFramer, type FramerOptions, type StreamEvent } from "./framer.js";

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const TAB = 0x09;

// Not fatal: invalid UTF-8 decodes to U+FFFD, which JSON.parse then rejects outside a string.
const decoder = new TextDecoder("utf-8");

function isBlank(buffer: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const byte = buffer[i];
    if (byte !== SPACE && byte !== TAB && byte !== CR) return false;
  }
  return true;
}

export class NdjsonFramer extends BufferedFramer<StreamEvent> {
  /** Dropping an oversized line's bytes until its "\n" (overflow "skip"). */
  #skipping = false;

  constructor(options: FramerOptions = {}) {
    super(options);
  }

  /** pending() holds part of a line (or the framer overflowed, or is skipping a line). */
  get midEvent(): boolean {
    return this.overflow || this.#skipping || !isBlank(this.buffer, this.lineStart, this.length);
  }

  protected frame(final: boolean): StreamEvent[] {
    const events: StreamEvent[] = [];
    for (;;) {
      const held = this.buffer.subarray(0, this.length);
      const lf = held.indexOf(LF, this.scan);
      // At the stream's end, a last line without its "\n" is complete all the same.
      const end = lf >= 0 ? lf + 1 : final ? held.length : -1;
      if (end < 0 || end === this.lineStart) break;
      this.scan = end;
      if (this.#skipping) {
        this.#skipping = false;
        this.#startAt(end);
        continue;
      }
      const lineEnd = lf >= 0 ? lf : end;
      if (!isBlank(held, this.lineStart, lineEnd)) {
        if (end - this.eventStart <= this.maxEventBytes) events.push(this.#event(held, lineEnd, end));
        else if (this.skipOversized) this.skippedEvents++;
        else {
          this.overflow = true;
          return events;
        }
        this.eventStart = end;
      }
      this.lineStart = end;
    }
    this.scan = this.length;
    if (this.length - this.eventStart <= this.maxEventBytes) {
      if (this.eventStart > 0) this.compact();
    } else if (this.#skipping || this.skipOversized) {
      if (!this.#skipping) this.skippedEvents++;
      this.#skipping = true;
      // The line's bytes so far are dropped: only its end is still looked for.
      this.#startAt(this.length);
    } else this.overflow = true;
    return events;
  }

  /** The event of the line ending at `lineEnd` (its terminator ends at `end`). */
  #event(held: Uint8Array, lineEnd: number, end: number): StreamEvent {
    const textEnd = lineEnd > this.lineStart && held[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
    return { raw: held.slice(this.eventStart, end), data: decoder.decode(held.subarray(this.lineStart, textEnd)) };
  }

  /** The next event (and line) starts at `offset`; what is before it is forgotten. */
  #startAt(offset: number): void {
    this.eventStart = offset;
    this.lineStart = offset;
    this.scan = offset;
    this.compact();
  }
}
