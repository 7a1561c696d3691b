// Property tests of the SSE framer on generated streams (fields, comments, blank lines, any line
// ending, a BOM, Unicode values, an unfinished tail) cut at random points: no byte is lost or
// duplicated, the chunking changes nothing, and the fields are those a whole-text reading of the
// WHATWG rules gives. FUZZ_RUNS sets the case count.
import fc from "fast-check";
import t from "tap";
import type { SseEvent } from "../../../src/streams/sse.js";
import { concat, frame, utf8 } from "./fixtures.js";

const RUNS = Number(process.env.FUZZ_RUNS ?? 1_000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261126);

const ending = fc.constantFrom("\n", "\r\n", "\r");
const value = fc.string({ unit: "binary", maxLength: 12 }).map((text) => text.replace(/[\r\n]/g, "·"));
const line = fc.oneof(
  fc
    .tuple(fc.constantFrom("data", "event", "id", "retry", "x", ""), fc.constantFrom(":", ": ", ":  ", ""), value)
    .map(([name, colon, text]) => (colon === "" ? name : `${name}${colon}${text}`)),
  fc.constantFrom("retry: 250", "data: [DONE]", "data:", "id: 4\u0000"),
  value.map((text) => `:${text}`),
  fc.constant(""),
);
const stream = fc
  .tuple(
    fc.boolean(),
    fc.array(fc.tuple(line, ending), { maxLength: 24 }),
    fc.oneof(fc.constant(""), value, fc.constant("\r")),
  )
  .map(([bom, lines, tail]) => `${bom ? "\uFEFF" : ""}${lines.map(([text, end]) => text + end).join("")}${tail}`);
const cutsOf = (length: number) =>
  fc.uniqueArray(fc.integer({ min: 1, max: Math.max(1, length - 1) }), { maxLength: 16 }).map((cuts) => {
    return cuts.filter((cut) => cut < length).sort((a, b) => a - b);
  });

/** The WHATWG reading of a whole stream (its end taken as the end of its last line, as end() does). */
function reference(bytes: Uint8Array): object[] {
  const events: object[] = [];
  const text = new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes);
  const lines = text.replace(/^\uFEFF/, "").split(/\r\n|\r|\n/);
  lines.pop(); // the unfinished line
  let fields: Record<string, string | number> = {};
  let data: string[] | undefined;
  const addData = (value: string) => {
    if (data === undefined) data = [value];
    else data.push(value);
  };
  let any = false;
  for (const line of lines) {
    if (line === "") {
      if (any) events.push(data === undefined ? fields : { ...fields, data: data.join("\n") });
      fields = {};
      data = undefined;
      any = false;
      continue;
    }
    any = true;
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon === -1 ? line : line.slice(0, colon);
    const fieldValue = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "data") addData(fieldValue);
    else if (name === "event") fields.event = fieldValue;
    else if (name === "id" && !fieldValue.includes("\0")) fields.id = fieldValue;
    else if (name === "retry" && /^[0-9]+$/.test(fieldValue)) fields.retry = Number(fieldValue);
  }
  return events;
}

/** Fields of each event as text, keys sorted. */
const canonical = (events: readonly object[]) =>
  JSON.stringify(events.map((fields) => Object.entries(fields).sort(([a], [b]) => a.localeCompare(b))));
const fieldsOf = (events: readonly SseEvent[]) => canonical(events.map(({ raw: _raw, ...fields }) => fields));
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

t.test("property: every byte is in exactly one event's raw or in pending(), in order", async (t) => {
  fc.assert(
    fc.property(
      stream.chain((text) => fc.tuple(fc.constant(text), cutsOf(utf8(text).length))),
      ([text, cuts]) => {
        const bytes = utf8(text);
        const { events, pending } = frame(bytes, cuts);
        return hex(concat([...events.map((event) => event.raw), pending])) === hex(bytes);
      },
    ),
    { seed: SEED, numRuns: RUNS },
  );
  t.pass(`${RUNS} generated streams, randomly cut`);
});

t.test("property: the chunking changes neither the events nor their raw bytes", async (t) => {
  fc.assert(
    fc.property(
      stream.chain((text) => fc.tuple(fc.constant(text), cutsOf(utf8(text).length))),
      ([text, cuts]) => {
        const bytes = utf8(text);
        const whole = frame(bytes, []);
        const cut = frame(bytes, cuts);
        const sameRaw = cut.events.every(
          (event, i) => hex(event.raw) === hex(whole.events[i]?.raw ?? new Uint8Array()),
        );
        return (
          sameRaw &&
          fieldsOf(cut.events) === fieldsOf(whole.events) &&
          hex(cut.pending) === hex(whole.pending) &&
          cut.framer.midEvent === whole.framer.midEvent
        );
      },
    ),
    { seed: SEED + 1, numRuns: RUNS },
  );
  t.pass(`${RUNS} generated streams, cut two ways`);
});

t.test("property: the fields are those of the WHATWG rules applied to the whole text", async (t) => {
  fc.assert(
    fc.property(
      stream.chain((text) => fc.tuple(fc.constant(text), cutsOf(utf8(text).length))),
      ([text, cuts]) => fieldsOf(frame(utf8(text), cuts).events) === canonical(reference(utf8(text))),
    ),
    { seed: SEED + 2, numRuns: RUNS },
  );
  t.pass(`${RUNS} generated streams against a whole-text reading`);
});
