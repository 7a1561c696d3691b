// Complexity scoring benchmark (run after build: node dist/bench/complexity.js).
// 1. Scoring cost per request through the stage's body hook (estimate, cost, tier, prediction,
//    timeout, metrics) for a 2 KB and a 100 KB chat request (English, and the mixed-language
//    corpus whose multi-byte UTF-8 is slower to decode); targets p50 ≤ 20 µs and ≤ 200 µs.
// 2. Fast token estimate vs gpt-tokenizer (o200k_base) on the fixture texts; target MAE ≤ 10%.
// Three rounds; the reported figure is the median of the rounds. Writes bench/results/complexity-<date>.json.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { countTokens } from "gpt-tokenizer/encoding/o200k_base";
import pino from "pino";
import { Registry } from "prom-client";
import { configSchema } from "../src/config/schema.js";
import { stageConfigs } from "../src/pipeline/build.js";
import { createComplexityStage } from "../src/pipeline/complexity/stage.js";
import { estimateTextTokens } from "../src/pipeline/complexity/tokens.js";
import type { Exchange, StageRun } from "../src/pipeline/types.js";
import { percentile } from "../src/util/percentile.js";

const ROOT = new URL("../../", import.meta.url);
const ROUNDS = 3;

function texts(folder: string): Array<{ name: string; text: string }> {
  const directory = new URL(`test/fixtures/complexity/${folder}/`, ROOT);
  return readdirSync(directory)
    .filter((name) => name.endsWith(".txt"))
    .sort()
    .map((name) => ({ name, text: readFileSync(new URL(name, directory), "utf8") }));
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** A chat request of about `targetBytes`, its user turns cut from the mixed-language corpus. */
function chatBody(corpusText: string, targetBytes: number): Uint8Array {
  const messages: Array<{ role: string; content: string }> = [
    { role: "system", content: "You are a careful analyst." },
  ];
  const encoder = new TextEncoder();
  let offset = 0;
  const size = () => encoder.encode(JSON.stringify({ model: "gpt-4o", messages, max_tokens: 512 })).length;
  while (size() < targetBytes) {
    const chunk = corpusText.slice(offset % corpusText.length, (offset % corpusText.length) + 1500);
    messages.push({ role: messages.length % 2 === 1 ? "user" : "assistant", content: chunk });
    offset += 1500;
  }
  const last = messages[messages.length - 1];
  if (last !== undefined)
    last.content = last.content.slice(0, Math.max(0, last.content.length - Math.ceil((size() - targetBytes) / 3)));
  return encoder.encode(JSON.stringify({ model: "gpt-4o", messages, max_tokens: 512 }));
}

function scoringRound(body: Uint8Array, iterations: number): { p50: number; p99: number } {
  const config = configSchema.parse({ routes: [{ name: "chat", match: {}, complexity: { enabled: true } }] });
  const stage = createComplexityStage(stageConfigs(config).complexity, {
    registry: new Registry(),
    log: pino({ level: "silent" }),
    now: () => performance.now(),
  });
  const headers = new Map([["content-type", "application/json"]]);
  const exchange = (): Exchange => ({
    request: {
      method: "POST",
      path: "/v1/chat/completions",
      authority: "bench",
      headers,
      requestId: "b",
      endOfStream: false,
    },
    route: { name: "chat" },
    startedAt: 0,
    tenant: "anonymous",
    priority: "standard",
    extendDeadline: () => undefined,
  });
  const once = (): void => {
    const run = stage.start(exchange()) as StageRun;
    void run.onRequestBody?.(body);
  };
  for (let index = 0; index < Math.min(2000, iterations); index++) once();
  const samples = new Float64Array(iterations);
  for (let index = 0; index < iterations; index++) {
    const start = performance.now();
    once();
    samples[index] = (performance.now() - start) * 1000;
  }
  const measured = [...samples];
  return { p50: percentile(measured, 0.5) ?? Number.NaN, p99: percentile(measured, 0.99) ?? Number.NaN };
}

interface ErrorRow {
  readonly set: string;
  readonly name: string;
  readonly exact: number;
  readonly estimate: number;
  readonly error: number;
}

function tokenErrors(set: string): ErrorRow[] {
  return texts(set).map(({ name, text }) => {
    const exact = countTokens(text, { disallowedSpecial: new Set<string>() });
    const estimate = estimateTextTokens(text);
    return { set, name, exact, estimate, error: (estimate - exact) / exact };
  });
}

function tokenizerCostMicros(text: string, count: (text: string) => number, iterations: number): number {
  for (let index = 0; index < 50; index++) count(text);
  const samples: number[] = [];
  for (let index = 0; index < iterations; index++) {
    const start = performance.now();
    count(text);
    samples.push((performance.now() - start) * 1000);
  }
  return median(samples);
}

const corpusTexts = texts("corpus");
const mixed = corpusTexts.map(({ text }) => text).join("\n\n");
const english = corpusTexts.find(({ name }) => name === "en-prose.txt")?.text ?? "";
const small = chatBody(mixed, 2048);
const largeEnglish = chatBody(english, 100 * 1024);
const largeMixed = chatBody(mixed, 100 * 1024);

type Percentiles = { p50: number; p99: number };
const rounds: Array<Record<"chat2k" | "chat100k_en" | "chat100k_mixed", Percentiles>> = [];
for (let round = 0; round < ROUNDS; round++) {
  rounds.push({
    chat2k: scoringRound(small, 20_000),
    chat100k_en: scoringRound(largeEnglish, 2_000),
    chat100k_mixed: scoringRound(largeMixed, 2_000),
  });
}
const summarize = (key: "chat2k" | "chat100k_en" | "chat100k_mixed", bytes: number, targetP50Micros: number) => ({
  bytes,
  p50Micros: median(rounds.map((round) => round[key].p50)),
  p99Micros: median(rounds.map((round) => round[key].p99)),
  targetP50Micros,
});
const scoring = {
  chat2k: summarize("chat2k", small.length, 20),
  chat100k_en: summarize("chat100k_en", largeEnglish.length, 200),
  chat100k_mixed: summarize("chat100k_mixed", largeMixed.length, 200),
};

const rows = [...tokenErrors("corpus"), ...tokenErrors("heldout")];
const meanAbs = (set?: string): number => {
  const selected = rows.filter((row) => set === undefined || row.set === set);
  return selected.reduce((sum, row) => sum + Math.abs(row.error), 0) / selected.length;
};
const twoKb = mixed.slice(0, 2048);
const tokenizers = {
  fastMicrosPer2KChars: tokenizerCostMicros(twoKb, estimateTextTokens, 2000),
  exactMicrosPer2KChars: tokenizerCostMicros(twoKb, (text) => countTokens(text), 500),
};

console.log("Scoring cost per request (stage body hook, median of 3 rounds)");
console.log("request           bytes     p50 µs    p99 µs   target p50");
for (const [name, result] of Object.entries(scoring)) {
  console.log(
    `${name.padEnd(12)} ${String(result.bytes).padStart(7)} ${result.p50Micros.toFixed(1).padStart(10)} ${result.p99Micros.toFixed(1).padStart(9)}   ≤ ${result.targetP50Micros} ${result.p50Micros <= result.targetP50Micros ? "ok" : "MISSED"}`,
  );
}
console.log("\nToken estimate vs gpt-tokenizer o200k_base");
console.log("set       text                  exact  estimate   error");
for (const row of rows) {
  console.log(
    `${row.set.padEnd(9)} ${row.name.padEnd(20)} ${String(row.exact).padStart(7)} ${String(row.estimate).padStart(9)} ${(row.error * 100).toFixed(1).padStart(6)}%`,
  );
}
const mae = { all: meanAbs(), corpus: meanAbs("corpus"), heldout: meanAbs("heldout"), target: 0.1 };
console.log(
  `mean absolute error: all ${(mae.all * 100).toFixed(1)}%, calibration corpus ${(mae.corpus * 100).toFixed(1)}%, held-out ${(mae.heldout * 100).toFixed(1)}% (target ≤ 10%)`,
);
console.log(
  `token counting, 2 KB of text: fast ${tokenizers.fastMicrosPer2KChars.toFixed(1)} µs, exact ${tokenizers.exactMicrosPer2KChars.toFixed(1)} µs`,
);

const date = new Date().toISOString().slice(0, 10);
const resultsDir = new URL("bench/results/", ROOT);
mkdirSync(resultsDir, { recursive: true });
const file = new URL(`complexity-${date}.json`, resultsDir);
writeFileSync(
  file,
  `${JSON.stringify({ date: new Date().toISOString(), node: process.version, rounds: ROUNDS, scoring, roundsRaw: rounds, tokenEstimate: { mae, rows }, tokenizers }, null, 2)}\n`,
);
console.log(`\nwrote ${file.pathname}`);
