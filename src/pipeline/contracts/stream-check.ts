// A contract check over a streamed answer (Server-Sent Events, or NDJSON on a route that declares
// it), chunk by chunk; an event is an SSE event or an NDJSON line (the framer's, framing.ts). The events are
// assembled into the document the same request would have got without streaming, so the verdict
// at the end is exactly the non-streamed one (contract.checkValue); meanwhile, the JSON the
// payload's text deltas build is checked value by value as it completes (IncrementalPayloadCheck).
//
// When enforcing, every event whose bytes are known to conform goes on at once; an event holding
// bytes of a value still being parsed waits, so a violating value never reaches the client; the
// stream's closing event ([DONE], response.completed, Ollama's done: true line) waits for the final verdict, so a client never
// sees a violating answer end well. Otherwise every byte goes on as it comes and the check only
// reports.
import type { CheckResult, Contract } from "../../contracts/contract.js";
import { IncrementalPayloadCheck, payloadTargetOf } from "../../contracts/incremental.js";
import { StreamAssembler, type StreamFormat, type TokenUsage } from "../../streams/formats.js";
import type { EventFramer, StreamEvent } from "../../streams/framer.js";
import { type Framing, newFramer } from "../../streams/framing.js";

export type StreamVerdict =
  /** Nothing decided yet. */
  | { readonly kind: "pending" }
  /** A result: a violation found early, or the final result at the end of the stream. */
  | { readonly kind: "checked"; readonly result: CheckResult; readonly final: boolean }
  /** The stream cannot be checked: too large to hold or assemble, or an event beyond the size limit. */
  | { readonly kind: "unverifiable"; readonly reason: "body.too_large"; readonly detail: string }
  /**
   * The upstream reported an error inside the stream: its output is not model output. Enforcing,
   * what was held unverified is dropped and the error event goes on.
   */
  | { readonly kind: "upstream_error"; readonly message: string };

export interface StreamStep {
  /** Bytes to send on now, in order. */
  readonly bytes: Uint8Array;
  /** Set once, on the push that decided it; "pending" on every other push. */
  readonly verdict: StreamVerdict;
  /**
   * With a violation or an unverifiable stream (enforcing): the bytes held back at that point, and
   * what followed them in the chunk. The stage drops them when it cuts the stream there, and sends
   * them after `bytes` when it lets the stream go on (unverifiable: pass, a model it does not bind).
   */
  readonly withheld: Uint8Array;
}

export interface StreamCheckOptions {
  readonly contract: Contract;
  readonly framing: Framing;
  readonly format: StreamFormat;
  /** Hold back what is not known to conform (enforce with stream: incremental); else pass everything on at once. */
  readonly enforcing: boolean;
  /** Bytes held back at most, and the largest event (contracts.maxBodyBytes); beyond either the stream is unverifiable. */
  readonly maxHeldBytes: number;
  /** Payload targets (choices, tool calls) checked at most (contracts.maxPayloads); more is unverifiable. */
  readonly maxTargets: number;
}

/** A held event and what it waits for: bytes of targets up to an offset, or the final verdict. */
interface HeldEvent {
  readonly raw: Uint8Array;
  readonly waits: readonly { readonly target: TargetState; readonly until: number }[];
  /** Closing event, or output of a payload that is only checked whole: released by the final verdict. */
  readonly gate: boolean;
}

interface TargetState {
  readonly check: IncrementalPayloadCheck | undefined;
  /** UTF-8 bytes of text this target received so far. */
  bytes: number;
}

const PENDING: StreamVerdict = { kind: "pending" };
const NOTHING = new Uint8Array();
const encoder = new TextEncoder();

export class StreamCheck {
  readonly #options: StreamCheckOptions;
  readonly #framer: EventFramer;
  readonly #assembler: StreamAssembler;
  readonly #targets = new Map<string, TargetState | undefined>();
  /** Enforcing, and the payload is JSON text inside the deltas (a <json> payload path): checked as it arrives. */
  readonly #incremental: boolean;
  #held: HeldEvent[] = [];
  #heldBytes = 0;
  /** Checked generic documents: the violations of the first one that failed, or undefined. */
  #genericResult: CheckResult | undefined;
  #genericDocuments = 0;
  #decided = false;
  /** The upstream's own error event, sent on in place of the unverified bytes held before it. */
  #upstreamError: Uint8Array | undefined;

  constructor(options: StreamCheckOptions) {
    this.#options = options;
    // A Responses API stream ends with the whole answer in one event: events up to the body limit.
    this.#framer = newFramer(options.framing, { maxEventBytes: options.maxHeldBytes });
    this.#assembler = new StreamAssembler(options.format, { maxDocumentBytes: options.maxHeldBytes });
    // Only enforcing needs a verdict before the end: otherwise the final check alone decides.
    this.#incremental = options.enforcing && options.contract.spec.payload?.endsWith("<json>") === true;
  }

  /** The stream's framing: the record that ends a cut stream is written in it. */
  get framing(): Framing {
    return this.#options.framing;
  }

  get usage(): TokenUsage | undefined {
    return this.#assembler.usage;
  }

  get model(): string | undefined {
    return this.#assembler.model;
  }

  /** The non-streamed equivalent of the answer so far (the model version field is read from it). */
  document(): unknown {
    return this.#assembler.document();
  }

  push(chunk: Uint8Array, endOfStream: boolean): StreamStep {
    if (this.#decided) return { bytes: chunk, verdict: PENDING, withheld: NOTHING };
    // Not enforcing, every byte goes on as it comes (also those of an event not yet complete).
    const out: Uint8Array[] = this.#options.enforcing ? [] : [chunk];
    const events = this.#framer.push(chunk);
    if (endOfStream) events.push(...this.#framer.end());
    for (const [index, event] of events.entries()) {
      const verdict = this.#onEvent(event, out);
      if (verdict === undefined) continue;
      // Events after the deciding one were framed already: they pass on unless the stream is cut.
      const rest = [...events.slice(index + 1).map((later) => later.raw), this.#framer.pending()];
      return this.#decide(verdict, out, concat(rest));
    }
    if (this.#framer.overflowed) {
      return this.#decide(
        { kind: "unverifiable", reason: "body.too_large", detail: "an event exceeds the event size limit" },
        out,
        this.#framer.pending(),
      );
    }
    if (this.#heldBytes > this.#options.maxHeldBytes || this.#assembler.overflowed) {
      const detail = `more than ${this.#options.maxHeldBytes} bytes of the stream would have to be held`;
      return this.#decide({ kind: "unverifiable", reason: "body.too_large", detail }, out, this.#framer.pending());
    }
    if (this.#targets.size > this.#options.maxTargets) {
      const detail = `more than ${this.#options.maxTargets} outputs (choices, tool calls) in one stream`;
      return this.#decide({ kind: "unverifiable", reason: "body.too_large", detail }, out, this.#framer.pending());
    }
    if (endOfStream) return this.#decide(this.#final(), out, this.#framer.pending());
    return { bytes: concat(out), verdict: PENDING, withheld: NOTHING };
  }

  /** Reads one event; returns a verdict when the event decides the stream. */
  #onEvent(event: StreamEvent, out: Uint8Array[]): StreamVerdict | undefined {
    const reading = this.#assembler.read(event);
    if (reading.error !== undefined) {
      // Not held: #decide sends it on after dropping what was held unverified.
      if (this.#options.enforcing) this.#upstreamError = event.raw;
      return { kind: "upstream_error", message: reading.error.message };
    }
    if (reading.malformed !== undefined) {
      this.#hold({ raw: event.raw, waits: [], gate: true }, out);
      return { kind: "checked", result: this.#options.contract.notJson(reading.malformed), final: false };
    }
    for (const document of reading.documents) {
      this.#genericDocuments++;
      const result = this.#options.contract.checkValue(document);
      if (!result.valid) {
        this.#genericResult ??= result;
        this.#hold({ raw: event.raw, waits: [], gate: true }, out);
        return { kind: "checked", result, final: false };
      }
    }
    const waits: { target: TargetState; until: number }[] = [];
    let gate = reading.done;
    for (const delta of reading.deltas) {
      const state = this.#target(delta.target);
      if (state === undefined) {
        // Output the contract does not cover passes; with a payload checked only whole, all output waits.
        if (!this.#incremental) gate = true;
        continue;
      }
      state.bytes += encoder.encode(delta.text).byteLength;
      waits.push({ target: state, until: state.bytes });
      const found = state.check?.push(delta.text);
      if (found !== undefined && found.violations.length > 0) {
        this.#hold({ raw: event.raw, waits, gate: true }, out);
        const total = found.violations.length;
        return {
          kind: "checked",
          result: { valid: false, body: undefined, payloads: [], violations: found.violations, total },
          final: false,
        };
      }
    }
    // The event that finishes a payload (a choice's finish_reason, response.output_text.done, which
    // repeats the whole text) waits for the verdict, and everything after it with it: a client
    // acting on "done" must not act on an answer the end-of-stream rules may still reject.
    if (reading.completed.some((target) => this.#target(target) !== undefined)) gate = true;
    this.#hold({ raw: event.raw, waits, gate }, out);
    if (reading.done) return this.#final();
    return undefined;
  }

  /** The incremental check of a payload target, created on its first delta; undefined when not a payload. */
  #target(target: string): TargetState | undefined {
    if (this.#targets.has(target)) return this.#targets.get(target);
    const base = this.#incremental ? payloadTargetOf(this.#options.contract, target) : undefined;
    const state =
      base === undefined ? undefined : { check: new IncrementalPayloadCheck(this.#options.contract, base), bytes: 0 };
    this.#targets.set(target, state);
    return state;
  }

  /** Queues the event, then sends on every event at the head of the queue that waits for nothing more. */
  #hold(event: HeldEvent, out: Uint8Array[]): void {
    if (!this.#options.enforcing) return;
    this.#held.push(event);
    this.#heldBytes += event.raw.byteLength;
    let released = 0;
    for (const next of this.#held) {
      if (next.gate || next.waits.some(({ target, until }) => (target.check?.settledBytes ?? 0) < until)) break;
      out.push(next.raw);
      this.#heldBytes -= next.raw.byteLength;
      released++;
    }
    if (released > 0) this.#held = this.#held.slice(released);
  }

  #final(): StreamVerdict {
    const { contract } = this.#options;
    if (this.#options.format === "generic") {
      if (this.#genericResult !== undefined) return { kind: "checked", result: this.#genericResult, final: true };
      const result =
        this.#genericDocuments === 0
          ? contract.notJson("the stream carried no JSON event")
          : { valid: true, body: undefined, payloads: [], violations: [], total: 0 };
      return { kind: "checked", result, final: true };
    }
    return { kind: "checked", result: contract.checkValue(this.#assembler.document()), final: true };
  }

  /**
   * From here on bytes pass unchanged. Not enforcing, the chunk went on whole already. Enforcing, a
   * stream that conforms releases what it held; a violation or an unverifiable stream sends on only
   * what was released before it, the rest withheld for the stage to drop (cut) or send (go on); an
   * upstream error drops the unverified bytes and sends the error on.
   */
  #decide(verdict: StreamVerdict, out: Uint8Array[], rest: Uint8Array): StreamStep {
    this.#decided = true;
    const held = this.#held.map((event) => event.raw);
    this.#held = [];
    this.#heldBytes = 0;
    if (!this.#options.enforcing) return { bytes: concat(out), verdict, withheld: NOTHING };
    if (verdict.kind === "upstream_error")
      return { bytes: concat([...out, this.#upstreamError ?? NOTHING, rest]), verdict, withheld: NOTHING };
    if (verdict.kind === "checked" && verdict.result.valid)
      return { bytes: concat([...out, ...held, rest]), verdict, withheld: NOTHING };
    return { bytes: concat(out), verdict, withheld: concat([...held, rest]) };
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 0) return NOTHING;
  if (parts.length === 1) return parts[0] as Uint8Array;
  return Buffer.concat(parts);
}
