import t from "tap";
import { demoResponseBody, renderOutput, TASKS } from "../../../src/demo/outputs.js";
import type { JsonValue } from "../../../src/pipeline/types.js";
import { EXPECTED_BREAKS, includesExpected } from "../../helpers/catalogue.js";
import { demoContract } from "./fixtures.js";

const INPUTS: JsonValue[] = [
  { text: "Great service, thanks!" },
  { text: "The parcel is late and the box was broken, I want a refund" },
  { text: "Ünïcödé — 配達はいつですか？ 🚚" },
  { text: "invoice charged twice" },
  "plain string input",
  {},
];

t.test("the catalogue has at least 20 breaks and every break has an expected rule", async (t) => {
  const names = Object.entries(TASKS).flatMap(([task, outputs]) =>
    Object.keys(outputs.breaks).map((name) => `${task}/${name}`),
  );
  t.ok(names.length >= 20, `${names.length} breaks`);
  const expected = Object.entries(EXPECTED_BREAKS).flatMap(([task, rules]) =>
    Object.keys(rules).map((name) => `${task}/${name}`),
  );
  t.same(names.sort(), expected.sort());
});

for (const [task, outputs] of Object.entries(TASKS)) {
  t.test(`${task}: every break is caught, by the rule it breaks`, async (t) => {
    const contract = await demoContract(task);
    for (const [name, render] of Object.entries(outputs.breaks)) {
      for (const input of INPUTS) {
        const body = JSON.stringify(demoResponseBody(task, render(input), "demo-v2"));
        const result = contract.checkText(body);
        t.equal(result.valid, false, `${name} caught for ${JSON.stringify(input)}`);
        const expected = EXPECTED_BREAKS[task]?.[name];
        const found = result.violations.map((violation) => `${violation.rule}@${violation.field}`).join(",");
        t.ok(
          expected !== undefined && includesExpected(result.violations, expected),
          `${name}: ${expected?.rule}@${expected?.field} in ${found}`,
        );
      }
    }
  });

  t.test(`${task}: conforming output is never flagged`, async (t) => {
    const contract = await demoContract(task);
    for (const [variant, input] of [
      ...INPUTS.map((input) => ["v1", input] as const),
      ...Object.keys(outputs.conformingEdges).map((variant) => [variant, INPUTS[2] ?? null] as const),
    ]) {
      const output = renderOutput(task, variant, input);
      t.not(output, undefined);
      const body = demoResponseBody(task, output ?? null);
      for (const text of [
        JSON.stringify(body),
        JSON.stringify(body, null, 2),
        JSON.stringify(reorder(body)),
        `\n  ${JSON.stringify(body)}\n`,
      ]) {
        const result = contract.checkText(text);
        t.same(result.violations, [], `${variant} for ${JSON.stringify(input)}`);
        t.equal(result.valid, true);
      }
    }
  });
}

/** The same JSON with every object's keys in reverse order. */
function reorder(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(reorder);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value)
      .reverse()
      .map(([key, child]) => [key, reorder(child)]),
  );
}

t.test("edge values conform", async (t) => {
  const sentiment = await demoContract("sentiment");
  for (const body of [
    { label: "NEGATIVE", score: 0 },
    { label: "POSITIVE", score: 1 },
    { label: "POSITIVE", score: 0.5 },
    { label: "NEUTRAL", score: 0.4999 },
    { score: 1e-300, label: "NEGATIVE" },
  ]) {
    t.same(sentiment.checkValue(body).violations, [], JSON.stringify(body));
  }
  const eta = await demoContract("eta");
  const now = new Date().toISOString();
  for (const body of [
    { order_id: "ord_1", eta_minutes: 0, status: "ON_TIME", computed_at: now },
    {
      order_id: "ord_Z9",
      eta_minutes: 1440,
      status: "DELAYED",
      delay_reason: "Storm — 暴風",
      computed_at: now.replace("Z", "+00:00"),
    },
    { orderId: "ord_camel", etaMinutes: 3, status: "ON_TIME", computedAt: now },
  ]) {
    t.same(eta.checkValue(body).violations, [], JSON.stringify(body));
  }
  const embedding = await demoContract("embedding");
  t.same(
    embedding.checkValue({
      data: [{ embedding: [1, -1, 0, 0.5, -0.5, 1e-7, 0, 1] }, { embedding: [0, 0, 0, 0, 0, 0, 0, 0] }],
    }).violations,
    [],
  );
  const chat = await demoContract("chat_structured");
  const triage = {
    category: "account",
    priority: 1,
    tags: ["a", "b", "c", "d", "ü".repeat(32)],
    summary: "é".repeat(280),
    needs_human: true,
  };
  for (const content of [
    JSON.stringify(triage),
    `\`\`\`json\n${JSON.stringify(triage, null, 2)}\n\`\`\``,
    `  \n\`\`\`\n${JSON.stringify(triage)}\n\`\`\`  \n`,
    `\n\t${JSON.stringify(triage)}\n`,
  ]) {
    const body = { choices: [{ index: 0, message: { role: "assistant", content } }] };
    t.same(chat.checkValue(body).violations, [], JSON.stringify(content).slice(0, 60));
  }
});
