// Property test with the real stages: the pipeline built from the default config (every capability
// on, the example contracts compiled) gets random request and response bodies — valid API shapes,
// arbitrary JSON, truncated JSON, bytes, deep nesting, gzip bombs and gzip garbage — over random
// routes and statuses. No exception escapes, every frame Envoy waits for is answered, no stage
// fails (guard_stage_errors_total stays 0) and the heap stays bounded. FUZZ_RUNS sets the case
// count (CI: a fixed-seed 2 000; `make fuzz`: 100 000).
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import t from "tap";
import type { CoreMetrics } from "../../../src/metrics/registry.js";
import { parseBody, requestDigest } from "../../../src/pipeline/cache/key.js";
import { estimateBody } from "../../../src/pipeline/complexity/estimate.js";
import type { OutputAsk } from "../../../src/pipeline/complexity/features.js";
import { estimateTextTokens } from "../../../src/pipeline/complexity/tokens.js";
import { exchange, fullPipeline } from "../../helpers/full-pipeline.js";
import { registrySamples, registrySum, registryValue } from "../../helpers/registry-metrics.js";

const RUNS = Number(process.env.FUZZ_RUNS ?? 2_000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261124);
const encoder = new TextEncoder();

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const PATHS = [
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
  "/v1/predict/sentiment",
  "/v1/predict/eta",
  "/v1/predict/other",
  "/v2/models/m/infer",
  "/elsewhere",
];

const text = fc.string({ maxLength: 40, unit: "binary" });
const message = fc.record(
  {
    role: fc.constantFrom("user", "system", "assistant", "tool"),
    content: fc.oneof(
      text,
      fc.array(fc.record({ type: fc.constantFrom("text", "image_url"), text }), { maxLength: 3 }),
      fc.jsonValue({ maxDepth: 3 }),
    ),
  },
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
      inputs: fc.array(
        fc.record(
          {
            name: text,
            shape: fc.array(fc.integer({ min: -1, max: 1e9 }), { maxLength: 4 }),
            datatype: fc.constantFrom("FP32", "INT64", "BYTES", "??"),
            data: fc.array(fc.double(), { maxLength: 4 }),
          },
          { requiredKeys: [] },
        ),
        { maxLength: 2 },
      ),
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
    {
      weight: 2,
      arbitrary: fc.tuple(json, fc.nat()).map(([value, cut]) => {
        const full = encoder.encode(JSON.stringify(value) ?? "null");
        return full.subarray(0, cut % (full.length + 1));
      }),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }) },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 1, max: 20_000 })
        .map((depth) => encoder.encode(`{"messages":${"[".repeat(depth)}${"]".repeat(depth)}}`)),
    },
  );

const responseJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.record(
    { label: fc.oneof(fc.constantFrom("POSITIVE", "NEGATIVE", "MIXED"), text), score: fc.oneof(fc.double(), text) },
    { requiredKeys: [] },
  ),
  fc.record({
    choices: fc.array(
      fc.record({
        message: fc.record({
          content: fc.oneof(
            text,
            fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify(value)),
          ),
        }),
      }),
      { maxLength: 3 },
    ),
    model: fc.constantFrom("triage-1", "demo"),
  }),
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

function encodedBody(spec: CaseSpec["response"]): { bytes: Uint8Array; encoding: string | undefined } {
  if (spec.encoding === "gzip") return { bytes: gzipSync(spec.body), encoding: "gzip" };
  if (spec.encoding === "gzip-garbage") return { bytes: spec.body, encoding: "gzip" };
  return { bytes: spec.body, encoding: spec.encoding };
}

async function seriesCount(metrics: CoreMetrics, name: string): Promise<number> {
  return (await registrySamples(metrics.registry, name)).length;
}

function counterTotal(metrics: CoreMetrics, name: string): Promise<number> {
  return registrySum(metrics.registry, name);
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
      const { bytes, encoding } = encodedBody(spec.response);
      problem = await exchange(processor, {
        method: spec.method,
        path: spec.path,
        requestHeaders: {
          "x-guard-cache": spec.cacheOptIn ? "allow" : undefined,
          authorization: spec.tenant ?? undefined,
        },
        body: spec.method === "POST" ? spec.body : new Uint8Array(),
        status: spec.response.status,
        responseHeaders: {
          "content-type": spec.response.contentType,
          "content-encoding": encoding,
          "x-model-version": spec.response.version,
        },
        responseBody: bytes,
      });
      return problem === undefined;
    }),
    { numRuns: RUNS, seed: SEED, endOnFailure: true },
  );
  t.equal(problem, undefined);
  t.ok(
    (await counterTotal(metrics, "guard_complexity_tier_decisions_total")) > RUNS / 20,
    "requests reached the complexity stage",
  );
  t.equal(await counterTotal(metrics, "guard_stage_errors_total"), 0, "no stage threw");
  t.ok(
    (await counterTotal(metrics, "guard_contract_checks_total")) > RUNS / 20,
    "responses reached the contract checks",
  );
  t.ok(
    (await counterTotal(metrics, "guard_cache_misses_total")) +
      (await counterTotal(metrics, "guard_cache_hits_total")) +
      (await counterTotal(metrics, "guard_cache_bypass_total")) >
      RUNS / 20,
    "requests reached the cache",
  );
  t.same(
    await registrySamples(metrics.registry, "guard_extproc_anomalies_total", { kind: "handler_error" }),
    [],
    "no frame handler failed",
  );
  t.equal(await registryValue(metrics.registry, "guard_extproc_active_streams"), 0, "every stream closed");
  gc();
  const growth = process.memoryUsage().heapUsed - heapAfterWarmUp;
  t.ok(growth < 48 * 2 ** 20, `heap grew ${(growth / 2 ** 20).toFixed(1)} MiB after warm-up (cache bounded at 1 MiB)`);
  t.ok(
    (await seriesCount(metrics, "guard_contract_checks_total")) < 200,
    "contract series bounded despite random model versions",
  );
});

t.test("each stage's body handling on random bytes: never throws", async (t) => {
  const estimateOptions = {
    maxBodyBytes: 1_048_576,
    maxDepth: 64,
    expectedOutput: (ask: OutputAsk) => (ask.limit ?? 1024) * ask.generations,
    countTokens: estimateTextTokens,
  };
  // Bodies that parse and are estimated from their content, not by size, are where the estimator
  // and the canonical key do real work; the generator must produce plenty of them.
  let estimatedFromContent = 0;
  let keyedAsJson = 0;
  fc.assert(
    fc.property(bodyBytes(requestJson), fc.constantFrom(...PATHS), (body, path) => {
      const estimate = estimateBody(path, body, estimateOptions);
      if (estimate.fallback === undefined) estimatedFromContent++;
      if (!(Number.isFinite(estimate.features.inputTokens) && estimate.features.inputTokens >= 0)) return false;
      const parsed = parseBody(body);
      if (parsed.kind === "json") keyedAsJson++;
      const input = {
        route: "r",
        method: "POST",
        path,
        tenant: "t",
        vary: [],
        body: parsed,
        excludeFields: new Set(["user"]),
      };
      return requestDigest(input) === requestDigest({ ...input, body: parseBody(body) });
    }),
    { numRuns: RUNS, seed: SEED },
  );
  t.ok(estimatedFromContent > RUNS / 10, `${estimatedFromContent} of ${RUNS} bodies estimated from their content`);
  t.ok(keyedAsJson > RUNS / 4, `${keyedAsJson} of ${RUNS} bodies keyed as canonical JSON`);
});

t.test("cache keys never cross tenants", async (t) => {
  fc.assert(
    fc.property(fc.string(), fc.string(), fc.jsonValue(), (tenantA, tenantB, body) => {
      fc.pre(tenantA !== tenantB);
      const parsed = parseBody(encoder.encode(JSON.stringify(body) ?? "null"));
      const key = (tenant: string): string =>
        requestDigest({
          route: "chat",
          method: "POST",
          path: "/v1/chat/completions",
          tenant,
          vary: [""],
          body: parsed,
          excludeFields: new Set(["user"]),
        });
      return key(tenantA) !== key(tenantB);
    }),
    { numRuns: Math.min(RUNS, 5_000), seed: SEED },
  );
  t.pass("distinct tenants always give distinct keys for the same request");
});
