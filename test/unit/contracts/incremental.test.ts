import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { type CompiledContracts, compileContracts } from "../../../src/contracts/compile.js";
import { Contract, type ContractSpec } from "../../../src/contracts/contract.js";
import {
  IncrementalPayloadCheck,
  isIncremental,
  MAX_DEPTH,
  payloadTargetOf,
} from "../../../src/contracts/incremental.js";
import type { ContractViolation } from "../../../src/contracts/json-check.js";
import { STRICT } from "../../../src/contracts/json-check.js";
import { TASKS } from "../../../src/demo/outputs.js";
import { demoContract } from "./fixtures.js";

const CONTENT = "choices[*].message.content<json>";
const BASE = "choices[0].message.content<json>";
const utf8 = (text: string): number => Buffer.byteLength(text);

interface Streamed {
  readonly check: IncrementalPayloadCheck;
  /** Violations of each push, as "field rule" (the base path cut off). */
  readonly perPush: string[][];
  readonly all: string[];
  readonly settled: number[];
}

const short = (violation: ContractViolation): string =>
  `${violation.field.startsWith(BASE) ? violation.field.slice(BASE.length) || "$" : violation.field} ${violation.rule}`;

function stream(contract: Contract, pieces: readonly string[]): Streamed {
  const check = new IncrementalPayloadCheck(contract, BASE);
  const perPush: string[][] = [];
  const settled: number[] = [];
  for (const piece of pieces) {
    perPush.push(check.push(piece).violations.map(short));
    settled.push(check.settledBytes);
  }
  return { check, perPush, all: perPush.flat(), settled };
}

/** What Contract.checkValue reports on the whole text as a chat completion's content. */
function finalCheck(contract: Contract, text: string): string[] {
  return contract.checkValue({ choices: [{ message: { content: text } }] }).violations.map(short);
}

function chat(task: string, overrides: Partial<ContractSpec> = {}): Promise<Contract> {
  return demoContract(task, { payload: CONTENT, ...overrides });
}

const ORDER_PROTO = `syntax = "proto3";
package incr.v1;
import "buf/validate/validate.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";

message Customer {
  string name = 1 [(buf.validate.field).string.max_len = 5];
  string email = 2 [(buf.validate.field).string.email = true];
}

message Order {
  message Line {
    string sku = 1 [(buf.validate.field).string.pattern = "^[A-Z]{3}-[0-9]+$"];
    int32 qty = 2 [(buf.validate.field).int32 = {gt: 0, lte: 100}];
    repeated double prices = 3 [(buf.validate.field).repeated.items.double.gte = 0];
    option (buf.validate.message).cel = {id: "line.big_needs_sku", message: "a big line needs a sku", expression: "this.qty < 50 || this.sku != ''"};
  }
  enum Status {
    STATUS_UNSPECIFIED = 0;
    OPEN = 1;
    CLOSED = 2;
  }
  string id = 1 [(buf.validate.field).required = true, (buf.validate.field).string.min_len = 3];
  Customer customer = 2 [(buf.validate.field).required = true];
  repeated Line lines = 3 [(buf.validate.field).repeated = {min_items: 2, max_items: 3}];
  map<string, int32> attrs = 4 [(buf.validate.field).map.values.int32.gte = 0];
  google.protobuf.Timestamp at = 5;
  Status status = 6 [(buf.validate.field).enum.defined_only = true];
  Line unchecked = 7 [(buf.validate.field).ignore = IGNORE_ALWAYS];
  google.protobuf.Struct extra = 8;
  int32 even = 9 [(buf.validate.field).cel = {id: "even", message: "must be even", expression: "this % 2 == 0"}];
  repeated string codes = 10 [
    (buf.validate.field).cel = {id: "codes.two", message: "two codes", expression: "this.size() == 2"},
    (buf.validate.field).repeated = {unique: true, items: {string: {min_len: 2}}}
  ];
  oneof contact {
    string email = 11 [(buf.validate.field).string.email = true];
    string phone = 12 [(buf.validate.field).string.min_len = 5];
  }
  optional int32 rank = 13 [(buf.validate.field).int32.gt = 0];
  // A message-level oneof rule makes its fields' rules skip their zero value (ignore IF_ZERO_VALUE).
  string nick = 14 [(buf.validate.field).string.min_len = 3];
  string alias = 15 [(buf.validate.field).string.min_len = 3];
  option (buf.validate.message).oneof = {fields: ["nick", "alias"]};
}
`;

let orderContracts: Promise<CompiledContracts> | undefined;

async function order(overrides: Partial<ContractSpec> = {}): Promise<Contract> {
  orderContracts ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), "incremental-test-"));
    await writeFile(join(dir, "order.proto"), ORDER_PROTO);
    const result = await compileContracts({ protoPaths: [dir] });
    await rm(dir, { recursive: true, force: true });
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    return result.contracts;
  })();
  const compiled = await orderContracts;
  const message = compiled.messages.get("incr.v1.Order");
  if (message === undefined) throw new Error("no incr.v1.Order");
  return new Contract({ message, payload: CONTENT, ...overrides }, compiled.validator, compiled.registry);
}

const TRIAGE =
  '{"category": "billing", "priority": 3, "tags": ["refund"], "summary": "Charged twice", "needs_human": false}';

t.test("a conforming document, pushed whole and one character at a time", async (t) => {
  const contract = await chat("chat_structured");
  for (const pieces of [[TRIAGE], [...TRIAGE]]) {
    const { check, all, settled } = stream(contract, pieces);
    t.same(all, []);
    t.equal(check.failed, false);
    t.equal(check.pushedBytes, utf8(TRIAGE));
    t.equal(check.settledBytes, utf8(TRIAGE));
    t.ok(
      settled.every((value, i) => i === 0 || value >= (settled[i - 1] ?? 0)),
      "settledBytes never decreases",
    );
  }
  t.same(finalCheck(contract, TRIAGE), []);
});

t.test("a violating value is reported when complete, and nothing from it on is settled", async (t) => {
  const contract = await chat("chat_structured");
  const text = '{"category": "billing", "priority": 9, "summary": "x"}';
  const { perPush, settled, check } = stream(contract, [
    '{"category": "billing", "priority": 9',
    ", ",
    '"summary": "x"}',
  ]);
  t.same(perPush, [[], [".priority int32.gte_lte"], []]);
  const valueStart = text.indexOf("9");
  t.ok((settled[0] ?? 0) < valueStart, "a number is pending until the byte after it");
  t.ok(check.settledBytes <= valueStart, `settled ${check.settledBytes} before the value at ${valueStart}`);
  t.equal(check.failed, false);
  t.same(finalCheck(contract, text), [".priority int32.gte_lte"]);
});

t.test("splits inside a number: 0. then 95", async (t) => {
  const sentiment = await chat("sentiment");
  const ok = stream(sentiment, ['{"label": "POSITIVE", "score": 0.', "95", "}"]);
  t.same(ok.all, []);
  const scoreStart = '{"label": "POSITIVE", "score": '.length;
  t.ok((ok.settled[0] ?? 0) <= scoreStart && (ok.settled[1] ?? 0) <= scoreStart, "the number waits for its end");
  t.equal(ok.check.settledBytes, ok.check.pushedBytes);
  const bad = stream(sentiment, ['{"label": "POSITIVE", "score": 1.', "5", "}"]);
  t.same(bad.perPush, [[], [], [".score double.gte_lte"]]);
  const exponent = stream(sentiment, ['{"label": "NEUTRAL", "score": 5e', "-1 ", "}"]);
  t.same(exponent.perPush, [[], [], []], "5e-1 is 0.5");
});

t.test("splits inside a key and inside escape sequences", async (t) => {
  const contract = await chat("chat_structured");
  const key = stream(contract, ['{"category": "billing", "prio', 'rity": 7', "}"]);
  t.same(key.perPush, [[], [], [".priority int32.gte_lte"]]);
  // \u0062illing is "billing"; the escapes are split anywhere.
  const pieces = ['{"category": "\\u00', "62illing", '", "summary": "caf\\', "u00e9 \\", 'n", "priority": 2}'];
  const escaped = stream(contract, pieces);
  t.same(escaped.all, []);
  t.equal(escaped.check.settledBytes, utf8(pieces.join("")));
  const respelled = stream(contract, ['{"category": "\\u0042', 'illing"', "}"]);
  t.same(respelled.perPush, [[], [".category string.in"], []]);
});

t.test("splits inside a UTF-8 character (a surrogate pair across two pushes)", async (t) => {
  const contract = await chat("chat_structured");
  // 32 emoji is the longest tag allowed (code points are counted), 33 is one too many.
  const ok = `{"tags": ["${"🚚".repeat(32)}"], "summary": "😀 ok", "category": "account", "priority": 4}`;
  const cut = ok.indexOf("😀") + 1;
  const streamed = stream(contract, [ok.slice(0, cut), ok.slice(cut)]);
  t.same(streamed.all, []);
  t.equal(streamed.check.pushedBytes, utf8(ok));
  t.equal(streamed.check.settledBytes, utf8(ok));
  const first = new IncrementalPayloadCheck(contract, BASE);
  first.push(ok.slice(0, cut));
  t.equal(first.pushedBytes, utf8(ok.slice(0, cut - 1)), "a lone high surrogate waits for its pair");
  const long = `{"tags": ["${"🚚".repeat(33)}"]}`;
  const everyUnit = stream(contract, [...long.split("")]);
  t.same(everyUnit.all, [".tags[0] string.max_len"]);
  t.same(finalCheck(contract, long).includes(".tags[0] string.max_len"), true);
  const lone = stream(contract, ['{"summary": "\ud83d"}']);
  t.equal(lone.check.failed, true, "a lone surrogate stops checking");
  t.same(lone.all, []);
});

t.test("unknown keys are reported as soon as the key is complete, before the value", async (t) => {
  const contract = await chat("chat_structured");
  const streamed = stream(contract, ['{"urg', 'ency"', ": 3}"]);
  t.same(streamed.perPush, [[], [".urgency json.unknown_field"], []]);
  t.equal(streamed.check.settledBytes, 1);
  t.same(finalCheck(contract, '{"urgency": 3}').includes(".urgency json.unknown_field"), true);
  const relaxed = await chat("chat_structured", { strictness: { ...STRICT, allowUnknownFields: true } });
  const text = '{"note": {"deep": [1, {"x": null}]}, "priority": 2}';
  const skipped = stream(relaxed, [text]);
  t.same(skipped.all, []);
  t.equal(skipped.check.settledBytes, utf8(text), "an ignored unknown field is settled: the final check drops it");
});

t.test("JSON names, wrong types and containers where a scalar belongs", async (t) => {
  const contract = await chat("chat_structured");
  const text = '{"needsHuman": "yes", "tags": "a", "priority": [1], "summary": {"x": 1}, "category": true}';
  const streamed = stream(contract, [...text]);
  const expected = [
    ".needsHuman json.wrong_type",
    ".tags json.wrong_type",
    ".priority json.wrong_type",
    ".summary json.wrong_type",
    ".category json.wrong_type",
  ];
  t.same(streamed.all, expected);
  t.same(finalCheck(contract, text), expected);
  const numberString = stream(contract, ['{"priority": "3"}']);
  t.same(numberString.all, [".priority json.number_string"]);
  const nulls = stream(contract, ['{"summary": null, "tags": [null]}']);
  t.same(nulls.all, [".summary json.null", ".tags[0] json.null"]);
});

t.test("Markdown fences and whitespace around the root", async (t) => {
  const contract = await chat("chat_structured");
  const fenced = stream(contract, ["  \n``", "`js", "on\n", TRIAGE, "\n``", "`\n "]);
  t.same(fenced.all, []);
  t.equal(fenced.check.failed, false);
  t.same(fenced.settled.slice(0, 3), [3, 3, utf8("  \n```json\n")], "the fence line is settled once complete");
  t.equal(fenced.check.settledBytes, utf8(`  \n\`\`\`json\n${TRIAGE}`), "trailing fence and whitespace are not");
  t.equal(fenced.check.pushedBytes, utf8(`  \n\`\`\`json\n${TRIAGE}\n\`\`\`\n `));
  const bare = stream(contract, ["```\n", TRIAGE]);
  t.same([bare.all, bare.check.failed], [[], false], "an unclosed fence is fine (unfence tolerates it)");
  const trailing = stream(contract, [TRIAGE, "\nHope this helps!"]);
  t.same([trailing.all, trailing.check.failed], [[], true], "text after the root: the final check decides");
  const unopened = stream(contract, [TRIAGE, "\n```"]);
  t.equal(unopened.check.failed, true, "a closing fence without an opening one is not stripped by unfence");
  t.not(finalCheck(contract, `${TRIAGE}\n\`\`\``), []);
  const twoTicks = stream(contract, ["``\n", TRIAGE]);
  t.same([twoTicks.all, twoTicks.check.failed], [[], true]);
  const afterViolation = stream(contract, ['```json\n{"priority": 0}', "\n```"]);
  t.same([afterViolation.all, afterViolation.check.failed], [[".priority int32.gte_lte"], false]);
});

t.test("not JSON, or not an object where the contract wants a message", async (t) => {
  const contract = await chat("chat_structured");
  for (const text of [
    "Sure! The ticket is about billing.",
    "[1, 2]",
    '"text"',
    "42 ",
    '{"priority": 3,}',
    '{"priority" 1}',
  ]) {
    const streamed = stream(contract, [text]);
    t.same([streamed.all, streamed.check.failed], [[], true], text);
  }
  const garbage = stream(contract, ['{"category": "billing" x, "priority": 3}']);
  t.equal(garbage.check.failed, true);
  t.equal(garbage.check.settledBytes, utf8('{"category": "billing"'), "settled up to the last complete token");
  const prose = TASKS.chat_structured?.breaks.prose_not_json?.({});
  t.equal(stream(contract, [String(prose)]).check.failed, true);
});

t.test("nested messages and repeated messages", async (t) => {
  const contract = await order();
  const text = JSON.stringify({
    id: "ord",
    customer: { name: "toolong", email: "a@b.co" },
    lines: [
      { sku: "ABC-1", qty: 0, prices: [1, -2] },
      { sku: "bad", qty: 3 },
    ],
    even: 3,
    codes: ["ab", "cd"],
  });
  const expected = [
    ".customer.name string.max_len",
    ".lines[0].qty int32.gt_lte",
    ".lines[0].prices[1] double.gte",
    ".lines[1].sku string.pattern",
    ".even even",
  ];
  for (const pieces of [[text], [...text]]) t.same(stream(contract, pieces).all, expected);
  t.same(finalCheck(contract, text), expected);
});

t.test("rules about the whole message or list are never reported on a part of it", async (t) => {
  const contract = await order();
  // Missing id and customer (required), one line (min_items), a line without sku (pattern on ""),
  // a big line without sku (message CEL), duplicate codes (unique), three codes (list CEL).
  const text = '{"lines": [{"qty": 60}], "codes": ["ab", "ab", "cd"]}';
  const streamed = stream(contract, [...text]);
  t.same(streamed.all, []);
  t.equal(streamed.check.settledBytes, utf8(text));
  const final = finalCheck(contract, text);
  for (const rule of [
    "repeated.min_items",
    "required",
    "line.big_needs_sku",
    "string.pattern",
    "repeated.unique",
    "codes.two",
  ]) {
    t.ok(
      final.some((violation) => violation.endsWith(` ${rule}`)),
      `the final check reports ${rule}: ${final.join(", ")}`,
    );
  }
  const item = stream(contract, ['{"codes": ["ab", "x"]}']);
  t.same(item.all, [".codes[1] string.min_len"], "an item's own rules are checked");
});

t.test("maps and Struct are left to the final check: settledBytes stops at them", async (t) => {
  const contract = await order();
  for (const [value, after] of [
    ['{"a": -1}', ".even even"],
    ['{"k": [1, "x"]}', ".even even"],
  ] as const) {
    for (const key of ["attrs", "extra"]) {
      const head = `{"id": "ord", "${key}": `;
      const streamed = stream(contract, [head, value, ', "even": 3}']);
      t.same(streamed.all, [after], `${key}: later values are still checked`);
      t.equal(streamed.check.settledBytes, utf8(head.trimEnd()), `${key}: held from its value on`);
      t.equal(streamed.check.failed, false);
    }
  }
  t.same(finalCheck(contract, '{"attrs": {"a": -1}}').includes('.attrs["a"] int32.gte'), true);
});

t.test("well-known types with a string form, ignored fields, enums", async (t) => {
  const contract = await order();
  const good = '{"at": "2025-01-31T12:00:00Z", "status": "OPEN", "unchecked": {"qty": 0, "sku": "x"}}';
  const streamed = stream(contract, [...good]);
  t.same(streamed.all, [], "IGNORE_ALWAYS: the rules below the field are skipped, as protovalidate does");
  t.equal(streamed.check.settledBytes, utf8(good));
  t.same(
    finalCheck(contract, good).filter((violation) => violation.startsWith(".unchecked")),
    [],
  );
  const bad = '{"at": "yesterday", "status": "LATE", "unchecked": {"qty": "x"}}';
  const expected = [".at json.wrong_format", ".status json.unknown_enum_value", ".unchecked.qty json.wrong_type"];
  t.same(stream(contract, [bad]).all, expected);
  const final = finalCheck(contract, bad);
  t.ok(
    expected.every((violation) => final.includes(violation)),
    final.join(", "),
  );
  const numbers = await order({ strictness: { ...STRICT, allowEnumNumbers: true } });
  t.same(stream(numbers, ['{"status": 7}']).all, [".status enum.defined_only"]);
  t.same(stream(numbers, ['{"status": 2}']).all, []);
  const eta = await chat("eta");
  t.same(stream(eta, ['{"status": "ON_TIME", "order_id": "ord_1"}']).all, []);
  t.same(stream(eta, ['{"status": "LOST_IN_TRANSIT"}']).all, [".status json.unknown_enum_value"]);
  t.same(stream(eta, ['{"status": "STATUS_UNSPECIFIED"}']).all, [".status enum.not_in"]);
});

t.test("presence: oneof members, proto3 optional, fields of a message-level oneof rule", async (t) => {
  const contract = await order();
  const cases: [string, string[]][] = [
    ['{"phone": "123"}', [".phone string.min_len"]],
    ['{"email": "not-an-email"}', [".email string.email"]],
    ['{"email": ""}', [".email string.email_empty"]],
    ['{"rank": 0}', [".rank int32.gt"]],
    ['{"rank": 2}', []],
    ['{"nick": ""}', []],
    ['{"nick": "ab"}', [".nick string.min_len"]],
    ['{"alias": "abc"}', []],
  ];
  for (const [text, expected] of cases) {
    t.same(stream(contract, [...text]).all, expected, text);
    const final = finalCheck(contract, text);
    for (const field of ["phone", "email", "rank", "nick", "alias"]) {
      t.same(
        final.filter((violation) => violation.startsWith(`.${field} `)),
        expected.filter((violation) => violation.startsWith(`.${field} `)),
        `${text}: the final check agrees on ${field}`,
      );
    }
  }
});

t.test("wrapField: the payload is the value of that field", async (t) => {
  const embedding = await chat("embedding", { wrapField: "values" });
  const streamed = stream(embedding, ["[0.5, 1.", "5, -0.25", "]"]);
  t.same(streamed.perPush, [[], ["[1] float.gte_lte"], []], "an item's rules; not min_items on a short list");
  t.same(finalCheck(embedding, "[0.5, 1.5, -0.25]").includes("[1] float.gte_lte"), true);
  const objectRoot = stream(embedding, ['{"values": []}']);
  t.same(objectRoot.all, ["$ json.wrong_type"]);
  const sentiment = await chat("sentiment", { wrapField: "score" });
  t.same(stream(sentiment, ["0.95", "\n"]).all, []);
  t.same(stream(sentiment, ["```json\n1.5", "\n```"]).all, ["$ double.gte_lte"]);
  t.same(finalCheck(sentiment, "```json\n1.5\n```").includes("$ double.gte_lte"), true);
});

t.test("bounded: depth and the violation cap", async (t) => {
  const relaxed = await chat("chat_structured", { strictness: { ...STRICT, allowUnknownFields: true } });
  const deep = stream(relaxed, [`{"x": ${"[".repeat(MAX_DEPTH)}`]);
  t.equal(deep.check.failed, true);
  const shallow = stream(relaxed, [`{"x": ${"[".repeat(MAX_DEPTH - 2)}`]);
  t.equal(shallow.check.failed, false);
  const capped = await chat("chat_structured", { maxViolations: 2 });
  const streamed = stream(capped, ['{"a": 1, "b": 2, "c": 3, "d": 4}']);
  t.same(streamed.all, [".a json.unknown_field", ".b json.unknown_field"]);
  t.equal(streamed.check.failed, false);
});

t.test("the demo catalogue, streamed: never more than the final check reports", async (t) => {
  for (const task of ["chat_structured", "sentiment", "eta"]) {
    const contract = await chat(task);
    const outputs = TASKS[task];
    if (outputs === undefined) throw new Error(task);
    const variants = { v1: outputs.conforming, ...outputs.breaks, ...outputs.conformingEdges };
    for (const [name, render] of Object.entries(variants)) {
      const output = render({ text: "invoice charged twice" });
      const text = typeof output === "string" ? output : JSON.stringify(output, null, 1);
      const final = finalCheck(contract, text);
      const streamed = stream(contract, text.match(/[\s\S]{1,7}/g) ?? []);
      t.ok(
        streamed.all.every((violation) => final.includes(violation)),
        `${task}/${name}: ${streamed.all.join(", ")} within ${final.join(", ")}`,
      );
      if (final.length === 0) t.equal(streamed.check.settledBytes, utf8(text.trimEnd()), `${task}/${name} settles`);
    }
  }
});

t.test("payload targets", async (t) => {
  const contract = await chat("chat_structured");
  t.equal(isIncremental(contract), true);
  t.equal(isIncremental(await demoContract("sentiment")), false);
  t.equal(payloadTargetOf(contract, "choices[0].message.content"), "choices[0].message.content<json>");
  t.equal(payloadTargetOf(contract, "$.choices[3].message.content"), "choices[3].message.content<json>");
  t.equal(payloadTargetOf(contract, "choices[0].message"), undefined);
  t.equal(payloadTargetOf(contract, "choices[0].delta.content"), undefined);
  t.equal(payloadTargetOf(contract, "choices[*].message.content"), undefined);
  t.equal(payloadTargetOf(contract, "choices[0].message.content<json>"), undefined);
  t.equal(payloadTargetOf("choices[1].message.content<json>", "choices[1].message.content"), BASE.replace("0", "1"));
  t.equal(payloadTargetOf("choices[1].message.content<json>", "choices[0].message.content"), undefined);
  t.equal(payloadTargetOf("$", "choices[0].message.content"), undefined);
  t.equal(payloadTargetOf("output<json>", "output"), "output<json>");
  t.equal(payloadTargetOf("bad[", "output"), undefined);
});
