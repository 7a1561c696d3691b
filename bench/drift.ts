// CPU the drift monitor adds per judged answer (src/pipeline/drift/monitor.ts, observe): the walk
// of the payload's fields into sketches and tables, plus the three input fields. It gets the
// payloads the contract check found (its <json> text already parsed), so each case hands it what
// the check returns. Two contracts: a six-field message as the whole body (a label with an `in`
// rule, a score, a count, a text, a flag, a list: every kind of profile), and demo.v1.TicketTriage
// inside chat content. Also the time of one report (what a scrape costs).
// Run after a build: taskset -c 0 node dist/bench/drift.js [results.json]
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { Registry } from "prom-client";
import { compileContracts } from "../src/contracts/compile.js";
import { Contract } from "../src/contracts/contract.js";
import { driftSchema, routeDriftSchema } from "../src/pipeline/drift/config.js";
import { createDriftMonitor } from "../src/pipeline/drift/monitor.js";
import type { Exchange } from "../src/pipeline/types.js";
import { chatExchange } from "../test/helpers/exchange.js";

const SIX_FIELDS = `syntax = "proto3";
package bench.v1;
import "buf/validate/validate.proto";
message SixFields {
  string label = 1 [(buf.validate.field).string = {in: ["POSITIVE", "NEGATIVE", "NEUTRAL"]}];
  double score = 2;
  int32 count = 3;
  string text = 4;
  bool flag = 5;
  repeated string tags = 6;
}
`;
const ANSWERS = 200_000;
const ROUNDS = 5;

const dir = await mkdtemp(join(tmpdir(), "drift-bench-"));
await writeFile(join(dir, "six.proto"), SIX_FIELDS);
const root = new URL("../../proto/contracts", import.meta.url).pathname;
const compiled = await compileContracts({ protoPaths: [dir, root] });
await rm(dir, { recursive: true });
if (!compiled.ok) throw new Error(JSON.stringify(compiled.errors));
const { messages, validator, registry } = compiled.contracts;

function contractOf(name: string, payload: string): Contract {
  const message = messages.get(name);
  if (message === undefined) throw new Error(name);
  return new Contract({ message, payload }, validator, registry);
}

const exchange = (i: number): Exchange =>
  chatExchange({
    route: { name: "bench" },
    promptTokens: 20 + (i % 300),
    cost: 100 + (i % 900),
    tier: i % 7 === 0 ? "heavy" : "light",
  });

interface Case {
  readonly contract: Contract;
  readonly bodies: readonly unknown[];
}

const six: Case = {
  contract: contractOf("bench.v1.SixFields", "$"),
  bodies: Array.from({ length: 64 }, (_, i) => ({
    label: ["POSITIVE", "NEGATIVE", "NEUTRAL"][i % 3],
    score: ((i * 37) % 100) / 100,
    count: i,
    text: "an answer of some length ".repeat(1 + (i % 5)),
    flag: i % 2 === 0,
    tags: ["a", "b", "c"].slice(0, i % 4),
  })),
};
const triage: Case = {
  contract: contractOf("demo.v1.TicketTriage", "choices[*].message.content<json>"),
  bodies: Array.from({ length: 64 }, (_, i) => ({
    choices: [
      {
        message: {
          content: JSON.stringify({
            category: ["billing", "technical", "account"][i % 3],
            priority: 1 + (i % 5),
            tags: ["refund", "invoice"].slice(0, i % 3),
            summary: "Customer was charged twice for the March invoice. ".repeat(1 + (i % 3)),
            needs_human: i % 5 === 0,
          }),
        },
      },
    ],
  })),
};

/** Median over ROUNDS of the µs per observe, each round ANSWERS answers over 8 versions. */
function measure({ contract, bodies }: Case): { perAnswerUs: number; reportMs: number } {
  const drift = createDriftMonitor(
    { section: driftSchema.parse({}), routes: new Map([["bench", routeDriftSchema.parse({})]]) },
    { registry: new Registry(), now: () => performance.now(), log: pino({ level: "silent" }) },
  );
  const exchanges = Array.from({ length: 64 }, (_, i) => exchange(i));
  const payloads = bodies.map((body) => contract.checkValue(body).payloads);
  const perRound: number[] = [];
  for (let round = 0; round <= ROUNDS; round++) {
    const started = process.cpuUsage();
    for (let i = 0; i < ANSWERS; i++) {
      drift.observe(exchanges[i % 64] as Exchange, contract, `v${i % 8}`, payloads[(i * 7) % 64] ?? []);
    }
    const used = process.cpuUsage(started);
    // Round 0 warms the JIT up and fills the sketches' buckets.
    if (round > 0) perRound.push((used.user + used.system) / ANSWERS);
  }
  const reportStarted = performance.now();
  drift.report();
  const reportMs = performance.now() - reportStarted;
  return { perAnswerUs: perRound.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)] ?? 0, reportMs };
}

const results = {
  node: process.version,
  answersPerRound: ANSWERS,
  rounds: ROUNDS,
  sixFieldsWholeBody: measure(six),
  triageInChatContent: measure(triage),
};
console.log(JSON.stringify(results, null, 2));
const out = process.argv[2];
if (out !== undefined) await writeFile(out, `${JSON.stringify(results, null, 2)}\n`);
