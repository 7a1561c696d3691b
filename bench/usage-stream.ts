// Usage stage cost per streamed chunk (run after build: node dist/bench/usage-stream.js).
// A chat completion stream of 1000 content chunks plus the usage chunk and [DONE] goes through a run
// of the stage, one SSE event per chunk as a model server flushes them (Envoy passes them on as they
// come), and the time of the whole stream is divided by its chunks: framing, JSON parsing of each
// event, the reading, the clock for output chunks and the end-of-stream metrics. Two chunk shapes:
// a minimal chunk of about 150 bytes and OpenAI's full chunk (id, fingerprint, logprobs: about 260
// bytes). Beside it, the framer alone, the framer and the assembler (the streams library's share),
// and a run that only forwards (what admission does per chunk).
// Seven rounds of 300 streams; the figure is the median of the rounds' µs per chunk.
import pino from "pino";
import { Registry } from "prom-client";
import { configSchema } from "../src/config/schema.js";
import { stageConfigs } from "../src/pipeline/build.js";
import type { Exchange, ResponseInfo, StageRun } from "../src/pipeline/types.js";
import { createUsageStage } from "../src/pipeline/usage/stage.js";
import { StreamAssembler } from "../src/streams/formats.js";
import { SseFramer } from "../src/streams/sse.js";

const ROUNDS = 7;
const STREAMS = 300;
const CONTENT_CHUNKS = 1000;
const encoder = new TextEncoder();

const WORDS = [" the", " model", " answers", " with", " tokens", " of", " varying", " length", ".", " Hello"];

function minimalChunk(index: number): string {
  const word = WORDS[index % WORDS.length] ?? "";
  return `data: {"id":"c1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"${word}"}}]}\n\n`;
}

function openAiChunk(index: number): string {
  const word = WORDS[index % WORDS.length] ?? "";
  return `data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{"content":"${word}"},"logprobs":null,"finish_reason":null}]}\n\n`;
}

function stream(chunk: (index: number) => string): Uint8Array[] {
  const chunks = [
    `data: {"object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n`,
  ];
  for (let index = 0; index < CONTENT_CHUNKS; index++) chunks.push(chunk(index));
  chunks.push(
    `data: {"object":"chat.completion.chunk","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":120,"completion_tokens":${CONTENT_CHUNKS},"total_tokens":${CONTENT_CHUNKS + 120}}}\n\n`,
    "data: [DONE]\n\n",
  );
  return chunks.map((text) => encoder.encode(text));
}

const config = configSchema.parse({ routes: [{ name: "chat", match: {} }] });
const stage = createUsageStage(stageConfigs(config).usage, {
  registry: new Registry(),
  log: pino({ level: "silent" }),
  now: () => performance.now(),
});
const response: ResponseInfo = {
  status: 200,
  headers: new Map([["content-type", "text/event-stream"]]),
  endOfStream: false,
};
const exchange = (): Exchange => ({
  request: {
    method: "POST",
    path: "/v1/chat/completions",
    authority: "bench",
    headers: new Map(),
    requestId: "b",
    endOfStream: false,
  },
  route: { name: "chat" },
  startedAt: performance.now(),
  tenant: "anonymous",
  priority: "standard",
  extendDeadline: () => undefined,
});

function usageStream(chunks: readonly Uint8Array[]): void {
  const run = stage.start(exchange()) as StageRun;
  void run.onRequestHeaders?.();
  void run.onResponseHeaders?.(response);
  const last = chunks.length - 1;
  for (let index = 0; index <= last; index++) void run.onResponseChunk?.(chunks[index] as Uint8Array, index === last);
  run.onEnd?.({ answeredBy: "upstream", status: 200, cancelled: false, streamed: true });
}

const forwardOnly: StageRun = { onResponseChunk: (chunk) => ({ type: "forward", bytes: chunk }) };
function forwardStream(chunks: readonly Uint8Array[]): void {
  const last = chunks.length - 1;
  for (let index = 0; index <= last; index++)
    void forwardOnly.onResponseChunk?.(chunks[index] as Uint8Array, index === last);
}

function framerStream(chunks: readonly Uint8Array[]): void {
  const framer = new SseFramer();
  for (const chunk of chunks) framer.push(chunk);
  framer.end();
}

function libraryStream(chunks: readonly Uint8Array[]): void {
  const framer = new SseFramer();
  const assembler = new StreamAssembler("openai.chat", { maxDocumentBytes: 0 });
  for (const chunk of chunks) for (const event of framer.push(chunk)) assembler.read(event);
  framer.end();
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** µs per chunk, median over the rounds. */
function measure(run: (chunks: readonly Uint8Array[]) => void, chunks: readonly Uint8Array[]): number {
  for (let index = 0; index < 20; index++) run(chunks);
  const rounds: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const start = performance.now();
    for (let index = 0; index < STREAMS; index++) run(chunks);
    rounds.push(((performance.now() - start) * 1000) / (STREAMS * chunks.length));
  }
  return median(rounds);
}

const results = [
  ["minimal", stream(minimalChunk)],
  ["openai", stream(openAiChunk)],
] as const;
const rows = results.map(([name, chunks]) => ({
  chunk: name,
  bytes: chunks[1]?.length ?? 0,
  usageStageMicros: measure(usageStream, chunks),
  framerOnlyMicros: measure(framerStream, chunks),
  libraryMicros: measure(libraryStream, chunks),
  forwardOnlyMicros: measure(forwardStream, chunks),
}));
console.log(`node ${process.version}, ${CONTENT_CHUNKS + 3} chunks per stream, median of ${ROUNDS} rounds`);
console.table(
  rows.map((row) => ({
    chunk: row.chunk,
    bytes: row.bytes,
    "usage stage µs/chunk": row.usageStageMicros.toFixed(2),
    "framer alone µs/chunk": row.framerOnlyMicros.toFixed(2),
    "framer + assembler µs/chunk": row.libraryMicros.toFixed(2),
    "forward only µs/chunk": row.forwardOnlyMicros.toFixed(3),
  })),
);
