// Validations per second on one core for a ~0.5 KB and a ~5 KB response body, through the same
// Contract.checkText the stage uses (JSON parse, payload extraction, strict JSON walk, protobuf
// JSON reader, protovalidate). Run after a build: node dist/bench/contracts.js
// Prints the median of 3 timed rounds per body and a breakdown of where the time goes.
import { fileURLToPath } from "node:url";
import { fromJson } from "@bufbuild/protobuf";
import { compileContracts } from "../src/contracts/compile.js";
import { Contract } from "../src/contracts/contract.js";

const ROUND_MS = 1000;

const root = fileURLToPath(new URL("../../", import.meta.url));
const compiled = await compileContracts({ protoPaths: [`${root}proto/contracts`] });
if (!compiled.ok) throw new Error(JSON.stringify(compiled.errors));
const { messages, validator, registry } = compiled.contracts;

function contract(message: string, payload = "$"): Contract {
  const desc = messages.get(message);
  if (desc === undefined) throw new Error(message);
  return new Contract({ message: desc, payload }, validator, registry);
}

const triage = (i: number) => ({
  category: "billing",
  priority: 2 + (i % 3),
  tags: ["refund", "invoice", "duplicate-charge"],
  summary: "Customer was charged twice for the March invoice and asks for a refund of the duplicate charge. "
    .repeat(2)
    .slice(0, 200),
  needs_human: false,
});
// ~0.5 KB: one chat completion whose content is the structured triage object.
const small = JSON.stringify({
  id: "chatcmpl-1",
  object: "chat.completion",
  model: "triage-1",
  choices: [{ index: 0, message: { role: "assistant", content: JSON.stringify(triage(0)) }, finish_reason: "stop" }],
});
// ~5 KB: ten choices (n=10) of the same shape.
const large = JSON.stringify({
  id: "chatcmpl-2",
  object: "chat.completion",
  model: "triage-1",
  choices: Array.from({ length: 10 }, (_, i) => ({
    index: i,
    message: { role: "assistant", content: JSON.stringify(triage(i)) },
    finish_reason: "stop",
  })),
});

function rate(fn: () => void): number {
  for (let i = 0; i < 2000; i++) fn();
  const started = performance.now();
  let count = 0;
  while (performance.now() - started < ROUND_MS) {
    for (let i = 0; i < 200; i++) fn();
    count += 200;
  }
  return count / ((performance.now() - started) / 1000);
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

const chat = contract("demo.v1.TicketTriage", "choices[*].message.content<json>");
if (!chat.checkText(small).valid || !chat.checkText(large).valid) throw new Error("bench bodies must conform");

const desc = messages.get("demo.v1.TicketTriage");
if (desc === undefined) throw new Error("no TicketTriage");
const inner = triage(0);
const innerMessage = fromJson(desc, inner, { registry });

for (const [name, body] of [
  ["0.5 KB", small],
  ["5 KB", large],
] as const) {
  const rounds = [0, 1, 2].map(() => rate(() => chat.checkText(body)));
  console.log(
    `${name} (${body.length} bytes): ${Math.round(median(rounds))} validations/s (rounds: ${rounds.map(Math.round).join(", ")})`,
  );
}

// Where the time goes for one payload: each stage alone.
const parts: [string, () => void][] = [
  ["JSON.parse of the 0.5 KB body + content", () => JSON.parse(JSON.parse(small).choices[0].message.content)],
  ["protobuf fromJson", () => fromJson(desc, inner, { registry, ignoreUnknownFields: true })],
  ["protovalidate validate", () => validator.validate(desc, innerMessage)],
];
for (const [name, fn] of parts) console.log(`  ${name}: ${Math.round(median([0, 1, 2].map(() => rate(fn))))} ops/s`);
