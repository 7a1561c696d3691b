// Streams written from the documents they stand for: a non-streamed response as a TS object, and the
// SSE text an OpenAI-compatible server would send for it (split into deltas of `piece` code points),
// so a test can assert that assembling the stream gives back exactly the document.

import type { Test } from "tap";
import { type EventReading, StreamAssembler, type StreamFormat } from "../../../src/streams/formats.js";
import type { EventFramer, StreamEvent } from "../../../src/streams/framer.js";
import { type SseEvent, SseFramer } from "../../../src/streams/sse.js";

export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
export const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("latin1");

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** Events as comparable plain values: the raw bytes as latin1 text beside the fields. */
export function plain(events: readonly StreamEvent[]): object[] {
  return events.map(({ raw, ...fields }) => ({ raw: text(raw), ...fields }));
}

/** One SSE event with `data:` the JSON of `value` (or the string as is). */
export function sse(value: unknown, event?: string): string {
  const data = typeof value === "string" ? value : JSON.stringify(value);
  return `${event === undefined ? "" : `event: ${event}\n`}data: ${data}\n\n`;
}

/** `text` in pieces of `size` code points (never splitting a surrogate pair). */
export function pieces(text: string, size: number): string[] {
  const points = Array.from(text);
  const out: string[] = [];
  for (let i = 0; i < points.length; i += size) out.push(points.slice(i, i + size).join(""));
  return out;
}

/** Feeds `bytes` cut at `cuts` (ascending offsets); returns the events (end() included) and what is pending. */
export function frame(
  bytes: Uint8Array,
  cuts: readonly number[],
  framer = new SseFramer(),
): { events: SseEvent[]; pending: Uint8Array; framer: SseFramer } {
  return frameWith(framer, bytes, cuts);
}

/** frame() with any framer (NDJSON, or one made by newFramer). */
export function frameWith<Event extends StreamEvent, Framer extends FramerOf<Event>>(
  framer: Framer,
  bytes: Uint8Array,
  cuts: readonly number[],
): { events: Event[]; pending: Uint8Array; framer: Framer } {
  const events: Event[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    events.push(...framer.push(bytes.subarray(from, cut)));
    from = cut;
  }
  events.push(...framer.end());
  return { events, pending: framer.pending(), framer };
}

interface FramerOf<Event extends StreamEvent> extends EventFramer {
  push(chunk: Uint8Array): Event[];
  end(): Event[];
}

/**
 * Under every two-chunk and the byte-at-a-time chunking, `bytes` frame (with a new framer from
 * `framer`) to `expected`, leave `pending` and lose no byte.
 */
export function assertEverySplit(
  t: Test,
  framer: () => EventFramer,
  bytes: Uint8Array,
  expected: object[],
  pending = "",
): void {
  for (const [label, cuts] of everyChunking(bytes)) {
    const { events, pending: left } = frameWith(framer(), bytes, cuts);
    t.same(plain(events), expected, `cut at ${label}`);
    t.equal(text(left), pending, `pending, cut at ${label}`);
    t.equal(text(concat([...events.map((event) => event.raw), left])), text(bytes), `every byte kept, cut at ${label}`);
  }
}

/** Every cutting of `bytes` into two chunks, and the byte-at-a-time one: [label, cuts]. */
export function everyChunking(bytes: Uint8Array): [string, number[]][] {
  const chunkings: [string, number[]][] = [
    ["nothing", []],
    ["every byte", Array.from({ length: bytes.length }, (_, i) => i)],
  ];
  for (let cut = 1; cut < bytes.length; cut++) chunkings.push([String(cut), [cut]]);
  return chunkings;
}

/** Frames `stream` (cut at `cuts`) and reads every event. */
export function assemble(
  format: StreamFormat,
  stream: string,
  cuts: readonly number[] = [],
  limits: { maxDocumentBytes?: number } = {},
): { assembler: StreamAssembler; readings: EventReading[] } {
  const assembler = new StreamAssembler(format, limits);
  const readings = frame(utf8(stream), cuts).events.map((event) => assembler.read(event));
  return { assembler, readings };
}

/** The text each target received, in order, from the readings' deltas. */
export function deltaText(readings: readonly EventReading[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const reading of readings)
    for (const delta of reading.deltas) out[delta.target] = (out[delta.target] ?? "") + delta.text;
  return out;
}

interface StreamOptions {
  /** Code points per delta. */
  readonly piece?: number;
  /** Send the usage chunk (stream_options.include_usage). */
  readonly usage?: boolean;
  /** End with data: [DONE]. */
  readonly done?: boolean;
}

type Json = Record<string, unknown>;

/** Round-robin over the choices' chunk lists, as OpenAI interleaves n > 1 choices. */
function interleave(lists: Json[][]): Json[] {
  const out: Json[] = [];
  for (let i = 0; lists.some((list) => i < list.length); i++)
    for (const list of lists) if (i < list.length) out.push(list[i]!);
  return out;
}

function ending(body: string, doc: Json, base: Json, options: StreamOptions): string {
  let out = body;
  if (options.usage !== false && doc.usage !== undefined) out += sse({ ...base, choices: [], usage: doc.usage });
  if (options.done !== false) out += "data: [DONE]\n\n";
  return out;
}

/** The `chat.completion.chunk` stream of a `chat.completion` document. */
export function chatStream(doc: Json, options: StreamOptions = {}): string {
  const size = options.piece ?? 3;
  const base: Json = { id: doc.id, object: "chat.completion.chunk", created: doc.created, model: doc.model };
  if (doc.system_fingerprint !== undefined) base.system_fingerprint = doc.system_fingerprint;
  const lists = (doc.choices as Json[]).map((choice) => {
    const message = choice.message as Json;
    const chunk = (delta: Json, finish: unknown = null): Json => ({
      ...base,
      choices: [{ index: choice.index, delta, logprobs: null, finish_reason: finish }],
    });
    const chunks = [chunk({ role: message.role, content: "", refusal: null })];
    if (typeof message.content === "string")
      for (const p of pieces(message.content, size)) chunks.push(chunk({ content: p }));
    if (typeof message.refusal === "string")
      for (const p of pieces(message.refusal, size)) chunks.push(chunk({ refusal: p }));
    ((message.tool_calls as Json[] | undefined) ?? []).forEach((call, index) => {
      const fn = call.function as Json;
      chunks.push(
        chunk({ tool_calls: [{ index, id: call.id, type: call.type, function: { name: fn.name, arguments: "" } }] }),
      );
      for (const p of pieces(fn.arguments as string, size))
        chunks.push(chunk({ tool_calls: [{ index, function: { arguments: p } }] }));
    });
    chunks.push(chunk({}, choice.finish_reason));
    return chunks;
  });
  return ending(
    interleave(lists)
      .map((chunk) => sse(chunk))
      .join(""),
    doc,
    base,
    options,
  );
}

/** The legacy `text_completion` stream of a completions document. */
export function completionsStream(doc: Json, options: StreamOptions = {}): string {
  const size = options.piece ?? 3;
  const base: Json = { id: doc.id, object: "text_completion", created: doc.created, model: doc.model };
  const lists = (doc.choices as Json[]).map((choice) => {
    const chunk = (text: string, finish: unknown = null): Json => ({
      ...base,
      choices: [{ index: choice.index, text, logprobs: null, finish_reason: finish }],
    });
    return [...pieces(choice.text as string, size).map((p) => chunk(p)), chunk("", choice.finish_reason)];
  });
  return ending(
    interleave(lists)
      .map((chunk) => sse(chunk))
      .join(""),
    doc,
    base,
    options,
  );
}

/** The Responses API event stream of a completed `response` (message and function_call items). */
export function responsesStream(response: Json, options: { piece?: number; completed?: boolean } = {}): string {
  const size = options.piece ?? 3;
  let sequence = 0;
  const events: string[] = [];
  const emit = (type: string, fields: Json): void => {
    events.push(sse({ type, sequence_number: sequence++, ...fields }, type));
  };
  const snapshot = { ...response, status: "in_progress", output: [], usage: null };
  emit("response.created", { response: snapshot });
  emit("response.in_progress", { response: snapshot });
  (response.output as Json[]).forEach((item, output) => {
    const id = item.id;
    if (item.type === "function_call") {
      emit("response.output_item.added", {
        output_index: output,
        item: { ...item, arguments: "", status: "in_progress" },
      });
      for (const p of pieces(item.arguments as string, size))
        emit("response.function_call_arguments.delta", { item_id: id, output_index: output, delta: p });
      emit("response.function_call_arguments.done", { item_id: id, output_index: output, arguments: item.arguments });
    } else {
      emit("response.output_item.added", {
        output_index: output,
        item: { ...item, status: "in_progress", content: [] },
      });
      (item.content as Json[]).forEach((part, content) => {
        const key = part.type === "refusal" ? "refusal" : "text";
        const at = { item_id: id, output_index: output, content_index: content };
        emit("response.content_part.added", { ...at, part: { ...part, [key]: "" } });
        const kind = key === "text" ? "output_text" : "refusal";
        for (const p of pieces(part[key] as string, size))
          emit(`response.${kind}.delta`, { ...at, delta: p, logprobs: [] });
        emit(`response.${kind}.done`, { ...at, [key]: part[key] });
        emit("response.content_part.done", { ...at, part });
      });
    }
    emit("response.output_item.done", { output_index: output, item });
  });
  if (options.completed !== false) emit("response.completed", { response });
  return events.join("");
}
