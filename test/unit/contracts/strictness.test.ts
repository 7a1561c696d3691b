import t from "tap";
import { STRICT } from "../../../src/contracts/json-check.js";
import { normaliseFieldPath, verdictHeader } from "../../../src/contracts/labels.js";
import { extractPayloads, parsePayloadPath, unfence } from "../../../src/contracts/payload.js";
import { demoContract } from "./fixtures.js";

function steps(text: string) {
  const parsed = parsePayloadPath(text);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.steps;
}

t.test("each strict JSON check is on by default and relaxable on its own", async (t) => {
  const now = new Date().toISOString();
  const cases: [keyof typeof STRICT, Record<string, unknown>, string][] = [
    [
      "allowUnknownFields",
      { order_id: "ord_1", eta_minutes: 5, status: "ON_TIME", computed_at: now, note: "x" },
      "json.unknown_field",
    ],
    [
      "allowNumberStrings",
      { order_id: "ord_1", eta_minutes: "5", status: "ON_TIME", computed_at: now },
      "json.number_string",
    ],
    [
      "allowNull",
      { order_id: "ord_1", eta_minutes: 5, status: "ON_TIME", computed_at: now, delay_reason: null },
      "json.null",
    ],
    ["allowEnumNumbers", { order_id: "ord_1", eta_minutes: 5, status: 1, computed_at: now }, "json.enum_number"],
  ];
  for (const [knob, body, rule] of cases) {
    const strict = await demoContract("eta");
    t.same(
      strict.checkValue(body).violations.map((v) => v.rule),
      [rule],
      `strict: ${rule}`,
    );
    const relaxed = await demoContract("eta", { strictness: { ...STRICT, [knob]: true } });
    t.same(relaxed.checkValue(body).violations, [], `${knob} relaxes it`);
  }
  const sentiment = await demoContract("sentiment", { strictness: { ...STRICT, allowNonFiniteStrings: true } });
  t.same(
    sentiment.checkValue({ label: "NEUTRAL", score: "NaN" }).violations.map((v) => v.rule),
    ["double.gte_lte", "double.finite"],
    "NaN admitted by JSON, still caught by the contract's rules",
  );
});

t.test("a number literal beyond the double range is out of range at its field, streamed or not", async (t) => {
  const sentiment = await demoContract("sentiment");
  for (const literal of ["6e68034292", "-1.5E309"]) {
    const result = sentiment.checkText(`{"label":"NEUTRAL","score":${literal}}`);
    t.same(
      result.violations.map((v) => `${v.field} ${v.rule}`),
      ["score json.out_of_range"],
      literal,
    );
    t.match(result.violations[0]?.message, /beyond ±1\.8e308 .*does not fit double/);
  }
});

t.test("wrong JSON types are reported with their paths, all of them, up to the cap", async (t) => {
  const chat = await demoContract("chat_structured", { maxViolations: 3 });
  const content = JSON.stringify({ category: 1, priority: true, tags: "a", summary: ["s"], needs_human: "yes" });
  const result = chat.checkValue({ choices: [{ message: { content } }] });
  t.equal(result.total, 5);
  t.equal(result.violations.length, 3);
  t.same(
    result.violations.map((v) => `${v.field} ${v.rule}`),
    [
      "choices[0].message.content<json>.category json.wrong_type",
      "choices[0].message.content<json>.priority json.wrong_type",
      "choices[0].message.content<json>.tags json.wrong_type",
    ],
  );
});

t.test("payload paths", async (t) => {
  t.same(parsePayloadPath("$"), { ok: true, steps: [] });
  t.same(parsePayloadPath("choices[*].message.content<json>"), {
    ok: true,
    steps: [
      { kind: "key", name: "choices" },
      { kind: "each" },
      { kind: "key", name: "message" },
      { kind: "key", name: "content" },
      { kind: "json" },
    ],
  });
  t.notOk(parsePayloadPath("a..b").ok);
  t.notOk(parsePayloadPath("a[").ok);
  t.equal(unfence('  ```json\n{"a":1}\n```\n'), '{"a":1}');
  t.equal(unfence('\n {"a":1} \n'), '{"a":1}');
  const { payloads } = extractPayloads(
    { choices: [{ message: { content: null } }, {}] },
    steps("choices[*].message.content<json>"),
    10,
  );
  t.same(payloads, [
    {
      path: "choices[0].message.content<json>",
      problem: { rule: "payload.not_string", message: "expected a string holding JSON" },
    },
    { path: "choices[1].message", problem: { rule: "payload.missing", message: 'no "message" here' } },
  ]);
  const empty = extractPayloads({ data: [] }, steps("data[*]"), 10);
  t.equal((empty.payloads[0] as { problem: { rule: string } }).problem.rule, "payload.empty");
  const many = extractPayloads({ data: [1, 2, 3] }, steps("data[*]"), 2);
  t.equal(many.overflow, true);
});

t.test("labels and header values stay bounded", async (t) => {
  t.equal(
    normaliseFieldPath('choices[12].message.content<json>.tags[3]["k"]'),
    "choices[*].message.content<json>.tags[*][*]",
  );
  t.equal(verdictHeader("violated", ["a", "b", "a"], 256), "violated; rules=a,b");
  const long = verdictHeader(
    "violated",
    Array.from({ length: 50 }, (_, i) => `rule.number_${i}`),
    64,
  );
  t.ok(long.length <= 64, long);
  t.ok(long.endsWith(",..."));
});
