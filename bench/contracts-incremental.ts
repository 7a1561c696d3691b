// Cost of the incremental contract check (src/contracts/incremental.ts) on one core: a
// demo.v1.TicketTriage answer (7 leaves: category, priority, 3 tags, summary, needs_human) streamed
// as chat-completion content in 4-character deltas, as a model streams it, and pushed whole; per
// document and per leaf, beside the final Contract.checkValue of the same document. Also the cost
// of Contract.checkLeaf alone for one scalar leaf.
// Run after a build: node dist/bench/contracts-incremental.js
// Prints the median of 5 timed rounds of each measurement.
import { fileURLToPath } from "node:url";
import { compileContracts } from "../src/contracts/compile.js";
import { Contract } from "../src/contracts/contract.js";
import { IncrementalPayloadCheck } from "../src/contracts/incremental.js";
import { JsonChecker, STRICT, ViolationSink } from "../src/contracts/json-check.js";

const ROUND_MS = 1000;
const BASE = "choices[0].message.content<json>";

const root = fileURLToPath(new URL("../../", import.meta.url));
const compiled = await compileContracts({ protoPaths: [`${root}proto/contracts`] });
if (!compiled.ok) throw new Error(JSON.stringify(compiled.errors));
const { messages, validator, registry } = compiled.contracts;
const message = messages.get("demo.v1.TicketTriage");
if (message === undefined) throw new Error("no demo.v1.TicketTriage");
const contract = new Contract({ message, payload: "choices[*].message.content<json>" }, validator, registry);

const content = JSON.stringify({
  category: "billing",
  priority: 3,
  tags: ["refund", "invoice", "duplicate-charge"],
  summary: "Customer was charged twice for the March invoice and asks for a refund of the duplicate charge.",
  needs_human: false,
});
const LEAVES = 7;
const deltas = content.match(/[\s\S]{1,4}/g) ?? [];

function streamed(pieces: readonly string[]): void {
  const check = new IncrementalPayloadCheck(contract, BASE);
  for (const piece of pieces) if (check.push(piece).violations.length > 0) throw new Error("must conform");
  if (check.settledBytes !== check.pushedBytes) throw new Error("must settle");
}

/** Microseconds per call of fn, median of 5 rounds. */
function micros(fn: () => void): number {
  for (let i = 0; i < 2000; i++) fn();
  const rounds: number[] = [];
  for (let round = 0; round < 5; round++) {
    const started = performance.now();
    let count = 0;
    while (performance.now() - started < ROUND_MS) {
      for (let i = 0; i < 100; i++) fn();
      count += 100;
    }
    rounds.push(((performance.now() - started) * 1000) / count);
  }
  return rounds.sort((a, b) => a - b)[2] ?? 0;
}

const sink = new ViolationSink(20);
const checker = new JsonChecker(STRICT, sink);
const priority = message.fields.find((field) => field.name === "priority");
if (priority === undefined) throw new Error("no priority");
const leaf = {
  parent: message,
  field: priority,
  index: undefined,
  jsonPath: `${BASE}.priority`,
  rulePath: `${BASE}.priority`,
  payloadPath: BASE,
  rules: true,
};

const body = { choices: [{ message: { content } }] };
const results = {
  [`streamed in ${deltas.length} deltas of 4 characters`]: micros(() => streamed(deltas)),
  "pushed whole": micros(() => streamed([content])),
  "final check (checkValue) of the same document": micros(() => contract.checkValue(body)),
  "Contract.checkLeaf, one int32 leaf": micros(() => contract.checkLeaf(3, leaf, checker, sink)),
};
console.log(`demo.v1.TicketTriage, ${content.length} bytes, ${LEAVES} leaves (Node ${process.version})`);
for (const [name, us] of Object.entries(results)) {
  const perLeaf = name.startsWith("Contract.checkLeaf") ? "" : `, ${(us / LEAVES).toFixed(1)} µs per leaf`;
  console.log(`  ${name}: ${us.toFixed(1)} µs per document${perLeaf}`);
}
