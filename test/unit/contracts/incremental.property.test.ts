// Property tests of the incremental checker against the final check (Contract.checkValue):
// random conforming documents of demo.v1.TicketTriage and demo.v1.Sentiment, written with random
// whitespace, escapes, number forms, key names and order, fences, and pushed in random pieces
// (splitting surrogate pairs, escapes, keys and numbers), give no violation and settle every byte
// but the trailing ones; with one injected violation, the incremental checker reports exactly it,
// with the path and rule the final check reports, as soon as the value (or key) is complete, and
// settles nothing from the value's first byte on. FUZZ_RUNS sets the case count.
import fc from "fast-check";
import t from "tap";
import type { Contract } from "../../../src/contracts/contract.js";
import { IncrementalPayloadCheck } from "../../../src/contracts/incremental.js";
import { demoContract } from "./fixtures.js";

const RUNS = Number(process.env.FUZZ_RUNS ?? 1_000);
const SEED = Number(process.env.FUZZ_SEED ?? 20260301);
const BASE = "choices[0].message.content<json>";
const utf8 = (text: string): number => Buffer.byteLength(text);

/** A JSON document to write, with one node or key marked: the writer records where it is. */
type Node =
  | { readonly kind: "object"; readonly entries: readonly Entry[]; readonly mark?: boolean }
  | { readonly kind: "array"; readonly items: readonly Node[]; readonly mark?: boolean }
  | { readonly kind: "string"; readonly value: string; readonly mark?: boolean }
  | { readonly kind: "number"; readonly value: number; readonly integer: boolean; readonly mark?: boolean }
  | { readonly kind: "literal"; readonly text: "true" | "false" | "null"; readonly mark?: boolean };
interface Entry {
  readonly key: string;
  readonly value: Node;
  readonly markKey?: boolean;
}

const str = (value: string, mark = false): Node => ({ kind: "string", value, mark });
const int = (value: number, mark = false): Node => ({ kind: "number", value, integer: true, mark });
const bool = (value: boolean, mark = false): Node => ({ kind: "literal", text: value ? "true" : "false", mark });

/** Small deterministic generator for the writer's choices (fast-check supplies the seed). */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = Math.imul(state ^ (state >>> 15), 1 | state);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  "\\": "\\\\",
  "\b": "\\b",
  "\f": "\\f",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};

interface Written {
  readonly text: string;
  /** Bytes: where the marked node (or key) starts, and the byte at which it is complete. */
  readonly markStart: number;
  readonly markDue: number;
  /** Bytes after the root value (whitespace, a closing fence). */
  readonly trailing: number;
}

function write(root: Node, seed: number): Written {
  const random = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const parts: string[] = [];
  let bytes = 0;
  let markStart = -1;
  let markDue = -1;
  const out = (text: string): void => {
    parts.push(text);
    bytes += utf8(text);
  };
  const space = (): void => out(random() < 0.6 ? "" : pick([" ", "\n", "  ", "\t", "\r\n", "\n    "]));
  const hex = (code: number): string => {
    const digits = code.toString(16).padStart(4, "0");
    return `\\u${random() < 0.5 ? digits : digits.toUpperCase()}`;
  };
  const quoted = (value: string): string => {
    let text = '"';
    for (const char of value) {
      const code = char.codePointAt(0) ?? 0;
      const short = SHORT_ESCAPES[char];
      const roll = random();
      if (short !== undefined) text += roll < 0.8 || char === '"' || char === "\\" ? short : hex(code);
      else if (code < 0x20) text += hex(code);
      else if (char === "/" && roll < 0.5) text += "\\/";
      else if (roll < 0.15) {
        const units = char.length === 2 ? [char.charCodeAt(0), char.charCodeAt(1)] : [code];
        text += units.map(hex).join("");
      } else text += char;
    }
    return `${text}"`;
  };
  const number = (value: number, integer: boolean): string => {
    if (!integer) return pick([String(value), value.toExponential(), value.toExponential().toUpperCase()]);
    return pick([String(value), `${value}.0`, `${value}e0`, `${value * 10}E-1`, `${value}.000`]);
  };
  const node = (value: Node): void => {
    const start = bytes;
    switch (value.kind) {
      case "object":
        out("{");
        value.entries.forEach((entry, i) => {
          if (i > 0) out(",");
          space();
          if (entry.markKey === true) markStart = bytes;
          out(quoted(entry.key));
          if (entry.markKey === true) markDue = bytes;
          space();
          out(":");
          space();
          node(entry.value);
          space();
        });
        out("}");
        break;
      case "array":
        out("[");
        value.items.forEach((item, i) => {
          if (i > 0) out(",");
          space();
          node(item);
          space();
        });
        out("]");
        break;
      case "string":
        out(quoted(value.value));
        break;
      case "number":
        out(number(value.value, value.integer));
        break;
      case "literal":
        out(value.text);
        break;
    }
    if (value.mark === true) {
      markStart = start;
      // A container is judged by its type at its first byte; a number only ends at the next byte.
      markDue =
        value.kind === "object" || value.kind === "array" ? start + 1 : bytes + (value.kind === "number" ? 1 : 0);
    }
  };
  const fenced = random() < 0.4;
  out(pick(["", "", " ", "\n", "\u00a0\n", "\ufeff"]));
  if (fenced) out(pick(["```json\n", "```\n", "```JSON \r\n"]));
  space();
  node(root);
  const rootEnd = bytes;
  out(pick(["", "", "\n", " \n"]));
  if (fenced && random() < 0.7) out(pick(["```", "```\n", "```  "]));
  return { text: parts.join(""), markStart, markDue, trailing: bytes - rootEnd };
}

/** Cuts `text` at the given UTF-16 positions (a surrogate pair may be cut). */
function split(text: string, cuts: readonly number[]): string[] {
  const positions = [...new Set(cuts.map((cut) => cut % (text.length + 1)))].sort((a, b) => a - b);
  const pieces: string[] = [];
  let from = 0;
  for (const position of positions) {
    pieces.push(text.slice(from, position));
    from = position;
  }
  pieces.push(text.slice(from));
  return pieces;
}

interface Run {
  readonly check: IncrementalPayloadCheck;
  readonly violations: { field: string; rule: string; afterBytes: number; beforeBytes: number }[];
  readonly monotonic: boolean;
}

function run(contract: Contract, pieces: readonly string[]): Run {
  const check = new IncrementalPayloadCheck(contract, BASE);
  const violations: Run["violations"] = [];
  let monotonic = true;
  for (const piece of pieces) {
    const settled = check.settledBytes;
    const beforeBytes = check.pushedBytes;
    for (const violation of check.push(piece).violations)
      violations.push({ field: violation.field, rule: violation.rule, beforeBytes, afterBytes: check.pushedBytes });
    if (check.settledBytes < settled || check.settledBytes > check.pushedBytes) monotonic = false;
  }
  return { check, violations, monotonic };
}

function finalCheck(contract: Contract, text: string): { field: string; rule: string }[] {
  return contract
    .checkValue({ choices: [{ message: { content: text } }] })
    .violations.map(({ field, rule }) => ({ field, rule }));
}

// Code points of any plane, no lone surrogates; lengths are in code points, as the rules count.
const text = (minLength: number, maxLength: number) => fc.string({ unit: "binary", minLength, maxLength });

const triage = fc
  .record({
    category: fc.constantFrom("billing", "technical", "account"),
    priority: fc.integer({ min: 1, max: 5 }),
    tags: fc.option(fc.array(text(1, 32), { maxLength: 5 }), { nil: undefined }),
    summary: text(1, 280),
    needsHuman: fc.option(fc.boolean(), { nil: undefined }),
    jsonName: fc.boolean(),
  })
  .map((doc) => ({ ...doc, needsHuman: doc.priority === 1 ? true : doc.needsHuman }));
type Triage = typeof triage extends fc.Arbitrary<infer T> ? T : never;

function triageEntries(doc: Triage): Entry[] {
  const entries: Entry[] = [
    { key: "category", value: str(doc.category) },
    { key: "priority", value: int(doc.priority) },
    { key: "summary", value: str(doc.summary) },
  ];
  if (doc.tags !== undefined)
    entries.push({ key: "tags", value: { kind: "array", items: doc.tags.map((tag) => str(tag)) } });
  if (doc.needsHuman !== undefined)
    entries.push({ key: doc.jsonName ? "needsHuman" : "needs_human", value: bool(doc.needsHuman) });
  return entries;
}

function shuffle<T>(items: readonly T[], seed: number): T[] {
  const random = prng(seed ^ 0x5bd1e995);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

const cuts = fc.array(fc.nat(), { maxLength: 40 });

t.test("conforming TicketTriage documents: no violation, every byte but the trailing ones settled", async (t) => {
  const contract = await demoContract("chat_structured");
  fc.assert(
    fc.property(triage, fc.nat(), cuts, (doc, seed, at) => {
      const written = write({ kind: "object", entries: shuffle(triageEntries(doc), seed) }, seed);
      const final = finalCheck(contract, written.text);
      if (final.length > 0) throw new Error(`generator: not conforming: ${JSON.stringify(final)}`);
      const { check, violations, monotonic } = run(contract, split(written.text, at));
      return (
        violations.length === 0 &&
        !check.failed &&
        monotonic &&
        check.pushedBytes === utf8(written.text) &&
        check.settledBytes === check.pushedBytes - written.trailing
      );
    }),
    { numRuns: RUNS, seed: SEED },
  );
  t.pass(`${RUNS} documents`);
});

const FIELD_NAMES = new Set(["category", "priority", "tags", "summary", "needs_human", "needsHuman"]);

/** One violation to inject: it changes the document's entries and says what must be reported. */
interface Injection {
  readonly apply: (entries: Entry[], doc: Triage) => { entries: Entry[]; field: string };
  readonly rule: string;
}

const replace = (key: string, value: Node) => (entries: Entry[]) => {
  const rest = entries.filter((entry) => entry.key !== key);
  return { entries: [...rest, { key, value }], field: `.${key}` };
};

const injection: fc.Arbitrary<Injection> = fc.oneof(
  fc
    .oneof(fc.integer({ min: 6, max: 100_000 }), fc.integer({ min: -100_000, max: 0 }))
    .map((priority) => ({ apply: replace("priority", int(priority, true)), rule: "int32.gte_lte" })),
  fc
    .string({ minLength: 0, maxLength: 12 })
    .filter((category) => !["billing", "technical", "account"].includes(category))
    .map((category) => ({ apply: replace("category", str(category, true)), rule: "string.in" })),
  fc
    .tuple(
      fc.stringMatching(/^[a-z][a-z0-9_]{0,11}$/),
      fc.constantFrom<Node>(int(7), str("x"), { kind: "array", items: [] }),
    )
    .filter(([key]) => !FIELD_NAMES.has(key))
    .map(([key, value]) => ({
      apply: (entries: Entry[]) => ({ entries: [...entries, { key, value, markKey: true }], field: `.${key}` }),
      rule: "json.unknown_field",
    })),
  fc.constantFrom<Injection>(
    { apply: replace("priority", str("3", true)), rule: "json.number_string" },
    { apply: replace("priority", bool(true, true)), rule: "json.wrong_type" },
    { apply: replace("priority", { kind: "number", value: 2.5, integer: false, mark: true }), rule: "json.wrong_type" },
    { apply: replace("summary", int(12, true)), rule: "json.wrong_type" },
    { apply: replace("category", { kind: "array", items: [str("billing")], mark: true }), rule: "json.wrong_type" },
    { apply: replace("tags", str("refund", true)), rule: "json.wrong_type" },
    { apply: replace("summary", { kind: "literal", text: "null", mark: true }), rule: "json.null" },
    { apply: replace("summary", str("", true)), rule: "string.min_len" },
    {
      apply: (entries, doc) => replace(doc.jsonName ? "needsHuman" : "needs_human", str("yes", true))(entries),
      rule: "json.wrong_type",
    },
  ),
  text(281, 320).map((summary) => ({ apply: replace("summary", str(summary, true)), rule: "string.max_len" })),
  fc.tuple(text(33, 40), fc.nat()).map(([tag, at]) => ({
    apply: (entries: Entry[], doc: Triage) => {
      const tags = (doc.tags ?? []).slice(0, 4).map((item) => str(item));
      const index = at % (tags.length + 1);
      tags.splice(index, 0, str(tag, true));
      return {
        entries: [
          ...entries.filter((entry) => entry.key !== "tags"),
          { key: "tags", value: { kind: "array" as const, items: tags } },
        ],
        field: `.tags[${index}]`,
      };
    },
    rule: "string.max_len",
  })),
);

t.test("one injected violation: reported once, as the final check reports it, and never settled", async (t) => {
  const contract = await demoContract("chat_structured");
  fc.assert(
    fc.property(triage, injection, fc.nat(), cuts, (doc, inject, seed, at) => {
      const { entries, field } = inject.apply(triageEntries(doc), doc);
      const written = write({ kind: "object", entries: shuffle(entries, seed) }, seed);
      const expected = { field: `${BASE}${field}`, rule: inject.rule };
      const final = finalCheck(contract, written.text);
      const { check, violations, monotonic } = run(contract, split(written.text, at));
      const [found] = violations;
      return (
        violations.length === 1 &&
        found !== undefined &&
        found.field === expected.field &&
        found.rule === expected.rule &&
        final.some((violation) => violation.field === expected.field && violation.rule === expected.rule) &&
        // As soon as it is complete: in the push that brought the byte completing it.
        found.beforeBytes < written.markDue &&
        found.afterBytes >= written.markDue &&
        check.settledBytes <= written.markStart &&
        !check.failed &&
        monotonic
      );
    }),
    { numRuns: RUNS, seed: SEED },
  );
  t.pass(`${RUNS} documents`);
});

t.test("Sentiment scores in every number form, split anywhere", async (t) => {
  const contract = await demoContract("sentiment", { payload: "choices[*].message.content<json>" });
  const score = fc.double({ min: 0, max: 1, noNaN: true });
  const outside = fc.oneof(
    fc.double({ min: 1.0000001, max: 1e300, noNaN: true }),
    fc.double({ min: -1e300, max: -1e-300, noNaN: true }),
  );
  fc.assert(
    fc.property(score, fc.option(outside, { nil: undefined }), fc.nat(), cuts, (value, bad, seed, at) => {
      const label = value >= 0.5 ? "POSITIVE" : value < 0.5 && seed % 2 === 0 ? "NEGATIVE" : "NEUTRAL";
      const scored = bad ?? value;
      const written = write(
        {
          kind: "object",
          entries: shuffle(
            [
              { key: "label", value: str(bad === undefined ? label : "NEUTRAL") },
              { key: "score", value: { kind: "number", value: scored, integer: false, mark: true } },
            ],
            seed,
          ),
        },
        seed,
      );
      const { check, violations, monotonic } = run(contract, split(written.text, at));
      const final = finalCheck(contract, written.text);
      if (bad === undefined)
        return (
          final.length === 0 && violations.length === 0 && check.settledBytes === check.pushedBytes - written.trailing
        );
      return (
        violations.length === 1 &&
        violations[0]?.rule === "double.gte_lte" &&
        final.some((violation) => violation.field === `${BASE}.score` && violation.rule === "double.gte_lte") &&
        check.settledBytes <= written.markStart &&
        monotonic
      );
    }),
    { numRuns: RUNS, seed: SEED },
  );
  t.pass(`${RUNS} documents`);
});
