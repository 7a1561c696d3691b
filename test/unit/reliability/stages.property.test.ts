// Property test with the real stages: the pipeline built from the default config (every capability
// on, the example contracts compiled) gets random request and response bodies — valid API shapes,
// arbitrary JSON, truncated JSON, bytes, deep nesting, gzip bombs and gzip garbage — over random
// routes and statuses. No exception escapes, every frame Envoy waits for is answered, no stage
// fails (guard_stage_errors_total stays 0) and the heap stays bounded. FUZZ_RUNS sets the case
// count (CI: a fixed-seed 2 000; `make fuzz`: 100 000).
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { pino } from "pino";
import t from "tap";
import { parse, stringify } from "yaml";
import { prepareText } from "../../../src/config/prepare.js";
import { StreamProcessor } from "../../../src/extproc/stream.js";
import type { ProcessingRequest, ProcessingResponse } from "../../../src/extproc/wire.js";
import { createCoreMetrics } from "../../../src/metrics/registry.js";
import { buildPipeline } from "../../../src/pipeline/build.js";
import { parseBody, requestDigest } from "../../../src/pipeline/cache/key.js";
import { estimateBody } from "../../../src/pipeline/complexity/estimate.js";
import { estimateTextTokens } from "../../../src/pipeline/complexity/tokens.js";

const RUNS = Number(process.env["FUZZ_RUNS"] ?? 2_000);
const SEED = Number(process.env["FUZZ_SEED"] ?? 20261124);
const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
const encoder = new TextEncoder();

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

async function fullPipeline(): Promise<{ processor: (send: (frame: ProcessingResponse) => void) => StreamProcessor; metrics: ReturnType<typeof createCoreMetrics> }> {
  const config = parse(await readFile(`${ROOT}config/default.yaml`, "utf8")) as Record<string, unknown>;
  // Absolute proto path (tests do not run from the root), and a small cache so "bounded" is visible.
  const text = stringify({ ...config, contracts: { protoPaths: [`${ROOT}proto/contracts`] }, cache: { maxBytes: 1_048_576 } });
  const prepared = await prepareText(text);
  if (!prepared.ok) throw new Error(`default config: ${JSON.stringify(prepared.errors)}`);
  const metrics = createCoreMetrics("fuzz");
  const log = pino({ level: "silent" });
  let clock = 0;
  const now = (): number => (clock += 1);
  const built = buildPipeline(prepared.config, { metrics, registry: metrics.registry, log, now }, prepared.contracts);
  await Promise.all(built.pipeline.stages.map((stage) => stage.warmUp?.()));
  return { metrics, processor: (send) => new StreamProcessor({ pipeline: () => built.pipeline, metrics, log, now, requestBufferLimitBytes: () => 8 * 1024 * 1024 }, send) };
}

const PATHS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/predict/sentiment", "/v1/predict/eta", "/v1/predict/other", "/v2/models/m/infer", "/elsewhere"];

const text = fc.string({ maxLength: 40, unit: "binary" });
const message = fc.record(
  { role: fc.constantFrom("user", "system", "assistant", "tool"), content: fc.oneof(text, fc.array(fc.record({ type: fc.constantFrom("text", "image_url"), text }), { maxLength: 3 }), fc.jsonValue({ maxDepth: 3 })) },
  { requiredKeys: [] },
);
/** Plausible API bodies (with wrong types sprinkled in), arbitrary JSON, and JSON that is not. */
const requestJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.record(
    {
      model: fc.oneof(fc.constantFrom("demo", "triage-1", "embed"), text),
      messages: fc.oneof(fc.array(message, { maxLength: 4 }), fc.jsonValue({ maxDepth: 2 })),
      prompt: fc.oneof(text, fc.array(fc.integer(), { maxLength: 8 })),
      input: fc.oneof(text, fc.array(text, { maxLength: 3 })),
      inputs: fc.array(fc.record({ name: text, shape: fc.array(fc.integer({ min: -1, max: 1e9 }), { maxLength: 4 }), datatype: fc.constantFrom("FP32", "INT64", "BYTES", "??"), data: fc.array(fc.double(), { maxLength: 4 }) }, { requiredKeys: [] }), { maxLength: 2 }),
      temperature: fc.oneof(fc.constant(0), fc.double(), text),
      seed: fc.integer(),
      max_tokens: fc.oneof(fc.integer(), fc.double(), text),
      n: fc.integer({ min: -5, max: 1_000_000 }),
      stream: fc.boolean(),
      user: text,
    },
    { requiredKeys: [] },
  ),
  fc.jsonValue({ maxDepth: 6 }),
);

const bodyBytes = (json: fc.Arbitrary<unknown>): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    { weight: 6, arbitrary: json.map((value) => encoder.encode(JSON.stringify(value) ?? "null")) },
    { weight: 2, arbitrary: fc.tuple(json, fc.nat()).map(([value, cut]) => { const full = encoder.encode(JSON.stringify(value) ?? "null"); return full.subarray(0, cut % (full.length + 1)); }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 20_000 }).map((depth) => encoder.encode(`{"messages":${"[".repeat(depth)}${"]".repeat(depth)}}`)) },
  );

const responseJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.record({ label: fc.oneof(fc.constantFrom("POSITIVE", "NEGATIVE", "MIXED"), text), score: fc.oneof(fc.double(), text) }, { requiredKeys: [] }),
  fc.record({ choices: fc.array(fc.record({ message: fc.record({ content: fc.oneof(text, fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify(value))) }) }), { maxLength: 3 }), model: fc.constantFrom("triage-1", "demo") }),
  fc.record({ data: fc.array(fc.record({ embedding: fc.array(fc.double(), { maxLength: 10 }) }), { maxLength: 3 }) }),
  fc.jsonValue({ maxDepth: 6 }),
);

const responseSpec = fc.record({
  status: fc.constantFrom(200, 200, 200, 400, 429, 500, 503),
  body: bodyBytes(responseJson),
  encoding: fc.constantFrom(undefined, undefined, "gzip", "gzip-garbage", "br", "zstd"),
  contentType: fc.constantFrom("application/json", "text/event-stream", "text/plain"),
  version: fc.oneof(fc.constantFrom("v1", "v2"), text),
});

const caseSpec = fc.record({
  path: fc.constantFrom(...PATHS),
  method: fc.constantFrom("POST", "POST", "GET"),
  cacheOptIn: fc.boolean(),
  tenant: fc.option(text),
  body: bodyBytes(requestJson),
  response: responseSpec,
});

type CaseSpec = typeof caseSpec extends fc.Arbitrary<infer T> ? T : never;

function wireHeaders(headers: Record<string, string | undefined>): { headers: { key: string; rawValue: Uint8Array }[] } {
  return { headers: Object.entries(headers).flatMap(([key, value]) => (value === undefined ? [] : [{ key, rawValue: encoder.encode(value) }])) };
}

function encodedBody(spec: CaseSpec["response"]): { bytes: Uint8Array; encoding: string | undefined } {
  if (spec.encoding === "gzip") return { bytes: gzipSync(spec.body), encoding: "gzip" };
  if (spec.encoding === "gzip-garbage") return { bytes: spec.body, encoding: "gzip" };
  return { bytes: spec.body, encoding: spec.encoding };
}

function answers(kind: string, out: readonly ProcessingResponse[]): ProcessingResponse | undefined {
  return out.find((frame) => frame.immediateResponse !== undefined || (frame as Record<string, unknown>)[kind] !== undefined);
}

/** Runs one exchange the way Envoy would; returns a problem description or undefined. */
async function exchange(make: (send: (frame: ProcessingResponse) => void) => StreamProcessor, spec: CaseSpec): Promise<string | undefined> {
  const out: ProcessingResponse[] = [];
  const processor = make((frame) => out.push(frame));
  try {
    const step = async (frame: ProcessingRequest, kind: string): Promise<ProcessingResponse | string> => {
      out.length = 0;
      await processor.handle(frame);
      const answer = answers(kind, out);
      if (answer === undefined) return `no answer to ${kind}`;
      const immediate = answer.immediateResponse;
      if (immediate !== undefined) {
        if (immediate.status.code < 100 || immediate.status.code > 599) return `bad status ${immediate.status.code}`;
        if (!(immediate.headers?.setHeaders ?? []).some((option) => option.header.key === "x-guard-reason")) return "reply without x-guard-reason";
      }
      return answer;
    };
    const hasBody = spec.method === "POST";
    const headersAnswer = await step(
      {
        request: "requestHeaders",
        requestHeaders: {
          headers: wireHeaders({
            ":method": spec.method,
            ":path": spec.path,
            ":authority": "fuzz",
            "content-type": "application/json",
            "content-length": hasBody ? String(spec.body.length) : undefined,
            "x-guard-cache": spec.cacheOptIn ? "allow" : undefined,
            authorization: spec.tenant ?? undefined,
          }),
          endOfStream: !hasBody,
        },
      },
      "requestHeaders",
    );
    if (typeof headersAnswer === "string") return headersAnswer;
    if (headersAnswer.immediateResponse !== undefined) return undefined;
    const mode = headersAnswer.modeOverride;
    if (hasBody && mode?.requestBodyMode === "BUFFERED") {
      const bodyAnswer = await step({ request: "requestBody", requestBody: { body: spec.body, endOfStream: true } }, "requestBody");
      if (typeof bodyAnswer === "string") return bodyAnswer;
      if (bodyAnswer.immediateResponse !== undefined) return undefined;
    }
    if (mode?.responseHeaderMode !== "SEND") return undefined;
    const { bytes, encoding } = encodedBody(spec.response);
    const responseAnswer = await step(
      {
        request: "responseHeaders",
        responseHeaders: {
          headers: wireHeaders({
            ":status": String(spec.response.status),
            "content-type": spec.response.contentType,
            "content-encoding": encoding,
            "content-length": String(bytes.length),
            "x-model-version": spec.response.version,
          }),
          endOfStream: false,
        },
      },
      "responseHeaders",
    );
    if (typeof responseAnswer === "string") return responseAnswer;
    if (responseAnswer.immediateResponse !== undefined) return undefined;
    const bodyMode = responseAnswer.modeOverride?.responseBodyMode ?? mode.responseBodyMode;
    if (bodyMode !== "BUFFERED") return undefined;
    const last = await step({ request: "responseBody", responseBody: { body: bytes, endOfStream: true } }, "responseBody");
    return typeof last === "string" ? last : undefined;
  } finally {
    processor.close();
  }
}

async function seriesCount(metrics: ReturnType<typeof createCoreMetrics>, name: string): Promise<number> {
  return (await metrics.registry.getSingleMetric(name)?.get())?.values.length ?? 0;
}

async function counterTotal(metrics: ReturnType<typeof createCoreMetrics>, name: string): Promise<number> {
  return ((await metrics.registry.getSingleMetric(name)?.get())?.values ?? []).reduce((sum, value) => sum + value.value, 0);
}

t.test("the real stages survive random bodies on every route", async (t) => {
  const { processor, metrics } = await fullPipeline();
  const warmUpCases = Math.min(500, Math.floor(RUNS / 5));
  let cases = 0;
  let heapAfterWarmUp = 0;
  let problem: string | undefined;
  await fc.assert(
    fc.asyncProperty(caseSpec, async (spec) => {
      if (++cases === warmUpCases) {
        gc();
        heapAfterWarmUp = process.memoryUsage().heapUsed;
      }
      problem = await exchange(processor, spec);
      return problem === undefined;
    }),
    { numRuns: RUNS, seed: SEED, endOnFailure: true },
  );
  t.equal(problem, undefined);
  t.ok(cases >= RUNS, `${cases} generated cases`);
  t.equal(await counterTotal(metrics, "guard_stage_errors_total"), 0, "no stage threw");
  t.ok((await counterTotal(metrics, "guard_contract_checks_total")) > RUNS / 20, "responses reached the contract checks");
  t.ok((await counterTotal(metrics, "guard_cache_misses_total")) + (await counterTotal(metrics, "guard_cache_hits_total")) + (await counterTotal(metrics, "guard_cache_bypass_total")) > RUNS / 20, "requests reached the cache");
  const anomalies = (await metrics.registry.getSingleMetric("guard_extproc_anomalies_total")?.get())?.values ?? [];
  t.same(anomalies.filter((value) => value.labels["kind"] === "handler_error"), [], "no frame handler failed");
  const active = await metrics.registry.getSingleMetric("guard_extproc_active_streams")?.get();
  t.equal(active?.values[0]?.value, 0, "every stream closed");
  gc();
  const growth = process.memoryUsage().heapUsed - heapAfterWarmUp;
  t.ok(growth < 48 * 2 ** 20, `heap grew ${(growth / 2 ** 20).toFixed(1)} MiB after warm-up (cache bounded at 1 MiB)`);
  t.ok((await seriesCount(metrics, "guard_contract_checks_total")) < 200, "contract series bounded despite random model versions");
});

t.test("each stage's body handling on random bytes: never throws", async (t) => {
  const estimateOptions = { maxBodyBytes: 1_048_576, maxDepth: 64, defaultMaxOutputTokens: 1024, countTokens: estimateTextTokens };
  let cases = 0;
  fc.assert(
    fc.property(bodyBytes(requestJson), fc.constantFrom(...PATHS), (body, path) => {
      cases++;
      const estimate = estimateBody(path, body, estimateOptions);
      if (!(Number.isFinite(estimate.features.inputTokens) && estimate.features.inputTokens >= 0)) return false;
      const parsed = parseBody(body);
      const input = { route: "r", method: "POST", path, tenant: "t", vary: [], body: parsed, excludeFields: new Set(["user"]) };
      return requestDigest(input) === requestDigest({ ...input, body: parseBody(body) });
    }),
    { numRuns: RUNS, seed: SEED },
  );
  t.ok(cases >= RUNS, `${cases} bodies estimated and keyed`);
});

t.test("cache keys never cross tenants", async (t) => {
  fc.assert(
    fc.property(fc.string(), fc.string(), fc.jsonValue(), (tenantA, tenantB, body) => {
      fc.pre(tenantA !== tenantB);
      const parsed = parseBody(encoder.encode(JSON.stringify(body) ?? "null"));
      const key = (tenant: string): string => requestDigest({ route: "chat", method: "POST", path: "/v1/chat/completions", tenant, vary: [""], body: parsed, excludeFields: new Set(["user"]) });
      return key(tenantA) !== key(tenantB);
    }),
    { numRuns: Math.min(RUNS, 5_000), seed: SEED },
  );
  t.pass("distinct tenants always give distinct keys for the same request");
});
