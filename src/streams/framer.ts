// The one interface the guard reads a streamed answer's wire format through, whatever the framing:
// Server-Sent Events (sse.ts) or newline-delimited JSON (ndjson.ts). The stages that follow a stream
// (contracts, usage, cache) get a framer from newFramer() and never name a framing themselves.
//
// Byte conservation, both framings: every byte pushed is in exactly one returned event's `raw` or in
// pending(), in order, unless the framer was told to skip oversized events (overflow: "skip").

const DEFAULT_MAX_EVENT_BYTES = 1024 * 1024;

/** One framed unit of a stream: an SSE event, or one NDJSON line. */
export interface StreamEvent {
  /** The exact bytes of this event as received, its terminator (and blank lines before it) included. */
  readonly raw: Uint8Array;
  /** SSE: the `data:` lines joined; NDJSON: the line's text. Undefined when the event carries none (heartbeat). */
  readonly data?: string;
  /** SSE: the `event:` field; NDJSON lines have no name. */
  readonly event?: string;
}

export interface FramerOptions {
  /** Largest event, in bytes with its separators and terminator; default 1 MiB. */
  readonly maxEventBytes?: number;
  /**
   * What an event beyond maxEventBytes does: "stop" (default) — the framer overflows and frames
   * nothing more (a reader that must see every event, such as a contract check); "skip" — the event
   * is dropped as it passes, without being held, and framing resumes after it (a reader that only
   * samples events, such as metering). Skipped events are counted in `skipped`.
   */
  readonly overflow?: "stop" | "skip";
}

export interface EventFramer {
  /** Feeds the next chunk; returns the events completed by it, in order. */
  push(chunk: Uint8Array): StreamEvent[];
  /** The stream has ended: returns the event its end completes, if any. */
  end(): StreamEvent[];
  /** Bytes received but not yet part of a complete event. */
  pending(): Uint8Array;
  /** An event grew beyond maxEventBytes under overflow "stop": push() returns [] from then on. */
  readonly overflowed: boolean;
  /** pending() holds part of an event, not only separators (or the framer overflowed). */
  readonly midEvent: boolean;
  /** Events dropped for their size under overflow "skip". */
  readonly skipped: number;
}

const INITIAL_CAPACITY = 4096;
/** A buffer grown past this is given back once the bytes it holds fit a quarter of it. */
const SHRINK_ABOVE = 64 * 1024;

/**
 * What both framers share: the bytes of the unfinished event, kept across pushes, and the offsets
 * into them. Each byte is looked at once (`scan` is kept across pushes), and the buffer is compacted
 * only after an event is returned, by moving the bytes that follow it (at most one chunk's worth).
 */
export abstract class BufferedFramer<Event extends StreamEvent> implements EventFramer {
  protected readonly maxEventBytes: number;
  protected readonly skipOversized: boolean;
  protected buffer = new Uint8Array(INITIAL_CAPACITY);
  /** Bytes held in `buffer`. */
  protected length = 0;
  /** Where the unfinished event's raw starts (separators before it included). */
  protected eventStart = 0;
  /** Start of the line being read. */
  protected lineStart = 0;
  /** Next byte to look at. */
  protected scan = 0;
  protected overflow = false;
  protected skippedEvents = 0;

  constructor(options: FramerOptions) {
    const max = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
    if (!(max >= 1)) throw new RangeError(`maxEventBytes must be at least 1, not ${max}`);
    this.maxEventBytes = max;
    this.skipOversized = options.overflow === "skip";
  }

  /** Frames what is held; `final`: the stream has ended. */
  protected abstract frame(final: boolean): Event[];

  abstract get midEvent(): boolean;

  /**
   * Set once an event grows beyond maxEventBytes under overflow "stop" (unfinished, or completed
   * within one chunk); push() then returns [] and keeps nothing more (the caller treats the stream
   * as unparseable). The events before it were returned; pending() holds the bytes from the
   * overflowing event's start up to and including the chunk that overflowed, so they are not lost,
   * and keeps returning them.
   */
  get overflowed(): boolean {
    return this.overflow;
  }

  get skipped(): number {
    return this.skippedEvents;
  }

  /** Feeds the next chunk; returns the events completed by it, in order. Bytes of an unfinished event are kept. */
  push(chunk: Uint8Array): Event[] {
    if (this.overflow) return [];
    const needed = this.length + chunk.length;
    if (needed > this.buffer.length) {
      const grown = new Uint8Array(Math.max(needed, this.buffer.length * 2));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    this.buffer.set(chunk, this.length);
    this.length = needed;
    return this.frame(false);
  }

  end(): Event[] {
    if (this.overflow) return [];
    return this.frame(true);
  }

  /** Bytes received but not yet part of a complete event (a stream that ends mid-event). */
  pending(): Uint8Array {
    return this.buffer.slice(this.eventStart, this.length);
  }

  /** Moves the unfinished event to the buffer's start (into a smaller buffer when it is now oversized). */
  protected compact(): void {
    const start = this.eventStart;
    const kept = this.length - start;
    if (this.buffer.length > SHRINK_ABOVE && kept * 4 <= this.buffer.length) {
      const smaller = new Uint8Array(Math.max(INITIAL_CAPACITY, kept * 2));
      smaller.set(this.buffer.subarray(start, this.length));
      this.buffer = smaller;
    } else this.buffer.copyWithin(0, start, this.length);
    this.length = kept;
    this.scan -= start;
    this.lineStart -= start;
    this.eventStart = 0;
  }
}
