// What tracing costs the guard per exchange: tracing off (no tracer: the runner makes no span
// objects), on at 1% (parent-based ratio, requests without a traceparent, so the ratio decides) and
// on at 100%, in the same run, interleaved round by round so drift hits every mode alike. An
// exchange is a non-streamed chat completion through the ext_proc state machine and the real
// stages (complexity, cache, admission, usage, annotate; every prompt unique, so the cache misses).
// The spans go to a real OTLP/HTTP protobuf exporter and a sink in another process; each round
// ends with the exporter flushed, so the CPU measured includes serialising and sending them.
// Run: npx tsc -p . && node dist/bench/tracing.js [--exchanges N] [--rounds N] [--out FILE]
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { configSchema } from "../src/config/schema.js";
import { freePort } from "../src/devstack/ports.js";
import { StreamProcessor } from "../src/extproc/stream.js";
import { ComponentLogs } from "../src/log.js";
import { createCoreMetrics } from "../src/metrics/registry.js";
import { buildPipeline } from "../src/pipeline/build.js";
import type { ExchangeTracer } from "../src/tracing/api.js";
import { createOtelTracer } from "../src/tracing/otel.js";
import { requestBody, requestHeaders, responseBody, responseHeaders } from "../test/helpers/frames.js";

const { values } = parseArgs({
  options: {
    exchanges: { type: "string", default: "4000" },
    rounds: { type: "string", default: "6" },
    out: { type: "string" },
  },
});
const EXCHANGES = Number(values.exchanges);
const ROUNDS = Number(values.rounds);
const MODES = [
  { name: "off", ratio: undefined },
  { name: "1%", ratio: 0.01 },
  { name: "100%", ratio: 1 },
] as const;

const answer = JSON.stringify({
  id: "c",
  object: "chat.completion",
  model: "demo",
  choices: [{ index: 0, message: { role: "assistant", content: "y".repeat(400) }, finish_reason: "stop" }],
  usage: { prompt_tokens: 40, completion_tokens: 100, total_tokens: 140 },
});

/** An OTLP receiver that reads and acknowledges every export, in a process of its own. */
async function startSink(port: number): Promise<() => void> {
  const child = spawn(
    process.execPath,
    [
      "-e",
      `require("node:http").createServer((q, s) => { q.resume(); q.on("end", () => { s.writeHead(200, { "content-type": "application/x-protobuf" }); s.end(); }); }).listen(${port}, "127.0.0.1", () => console.log("up"));`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await new Promise((resolve) => child.stdout?.once("data", resolve));
  return () => child.kill();
}

async function round(ratio: number | undefined, url: string, sequence: { next: number }) {
  const log = pino({ level: "silent" });
  const exported = { spans: 0 };
  let tracer: ExchangeTracer | undefined;
  if (ratio !== undefined) {
    const settings = {
      url,
      protocol: "http/protobuf" as const,
      serviceName: "bench",
      resourceAttributes: {},
      sampler: "parentbased_traceidratio" as const,
      ratio,
      alwaysSample: [],
      scheduleDelayMs: 5_000,
    };
    const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-proto");
    const exporter = new OTLPTraceExporter({ url });
    const counted: typeof exporter.export = (spans, done) => {
      exported.spans += spans.length;
      exporter.export(spans, done);
    };
    tracer = await createOtelTracer(settings, {
      serviceVersion: "bench",
      log,
      exporter: { export: counted, shutdown: () => exporter.shutdown() },
    });
  }
  const config = configSchema.parse({
    routes: [
      {
        name: "chat",
        complexity: { enabled: true },
        cache: { enabled: true },
        admission: { enabled: true },
      },
    ],
  });
  const metrics = createCoreMetrics("bench");
  const now = (): number => performance.now();
  const { pipeline } = buildPipeline(config, {
    metrics,
    registry: metrics.registry,
    logs: new ComponentLogs(log),
    now,
    tracer,
  });
  const deps = { pipeline: () => pipeline, metrics, log, now };
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < EXCHANGES; i++) {
    const processor = new StreamProcessor(deps, () => undefined);
    const prompt = `exchange ${sequence.next++} ${"x".repeat(200)}`;
    await processor.handle(requestHeaders({ "content-type": "application/json" }));
    await processor.handle(
      requestBody(JSON.stringify({ model: "demo", messages: [{ role: "user", content: prompt }], max_tokens: 100 })),
    );
    await processor.handle(responseHeaders(200, { "content-type": "application/json" }));
    await processor.handle(responseBody(answer));
    processor.close();
    // Frames arrive as I/O: without a turn of the event loop between exchanges the exporter's HTTP
    // replies would never be read, its queue would overflow and drop spans, and 100% would look cheap.
    await new Promise((resolve) => setImmediate(resolve));
  }
  await tracer?.shutdown(30_000);
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  await pipeline.close();
  return { cpuUs: (used.user + used.system) / EXCHANGES, wallUs: (wallMs * 1000) / EXCHANGES, spans: exported.spans };
}

const median = (numbers: number[]): number => {
  const sorted = numbers.toSorted((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};

const port = await freePort();
const stopSink = await startSink(port);
const url = `http://127.0.0.1:${port}/v1/traces`;
const sequence = { next: 0 };
// One unmeasured round per mode first: module loading and JIT warm-up.
for (const mode of MODES) await round(mode.ratio, url, sequence);
const samples = new Map(MODES.map((mode) => [mode.name, [] as Array<Awaited<ReturnType<typeof round>>>]));
for (let r = 0; r < ROUNDS; r++)
  for (const mode of MODES) samples.get(mode.name)?.push(await round(mode.ratio, url, sequence));
stopSink();

const rows = MODES.map((mode) => {
  const runs = samples.get(mode.name) ?? [];
  return {
    mode: mode.name,
    cpuUsPerExchange: Number(median(runs.map((run) => run.cpuUs)).toFixed(1)),
    wallUsPerExchange: Number(median(runs.map((run) => run.wallUs)).toFixed(1)),
    spansExportedPerExchange: Number(
      (runs.reduce((sum, run) => sum + run.spans, 0) / (runs.length * EXCHANGES)).toFixed(3),
    ),
  };
});
const off = rows[0]?.cpuUsPerExchange ?? Number.NaN;
const report = {
  date: new Date().toISOString(),
  node: process.version,
  exchanges: EXCHANGES,
  rounds: ROUNDS,
  rows: rows.map((row) => ({ ...row, cpuVsOff: `${(((row.cpuUsPerExchange - off) / off) * 100).toFixed(1)}%` })),
};
console.log("| tracing | CPU µs / exchange | vs off | wall µs / exchange | spans exported / exchange |");
console.log("| --- | --- | --- | --- | --- |");
for (const row of report.rows)
  console.log(
    `| ${row.mode} | ${row.cpuUsPerExchange} | ${row.cpuVsOff} | ${row.wallUsPerExchange} | ${row.spansExportedPerExchange} |`,
  );
if (values.out !== undefined) await writeFile(values.out, `${JSON.stringify(report, null, 2)}\n`);
