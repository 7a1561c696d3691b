import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib";
import { pino } from "pino";
import { Registry } from "prom-client";
import t from "tap";
import { configSchema, type GuardConfig } from "../../../../src/config/schema.js";
import { renderOutput } from "../../../../src/demo/outputs.js";
import { problemType } from "../../../../src/pipeline/answers.js";
import { stageConfigs } from "../../../../src/pipeline/build.js";
import { createContractsStage } from "../../../../src/pipeline/contracts/stage.js";
import type { ChunkStep, Exchange, ResponseInfo, Stage, StageRun, Step } from "../../../../src/pipeline/types.js";
import { registrySamples, type Sample } from "../../../helpers/registry-metrics.js";
import { demoContracts } from "../../contracts/fixtures.js";

function config(contract: Record<string, unknown>, contracts: Record<string, unknown> = {}): GuardConfig {
  return configSchema.parse({
    contracts,
    routes: [
      {
        name: "sentiment",
        match: { pathPrefix: "/v1/sentiment" },
        contract: { message: "demo.v1.Sentiment", ...contract },
      },
      { name: "open", match: { pathPrefix: "/" } },
    ],
  });
}

async function setup(contract: Record<string, unknown>, contracts: Record<string, unknown> = {}, random = () => 0.5) {
  const registry = new Registry();
  const stage = createContractsStage(
    stageConfigs(config(contract, contracts)).contracts,
    { registry, log: pino({ level: "silent" }), now: () => 0 },
    await demoContracts(),
    { random },
  );
  return { registry, stage };
}

function exchange(
  route = "sentiment",
  endOfStream = true,
  headers: Record<string, string> = {},
  path = "/v1/sentiment",
): Exchange {
  return {
    request: {
      method: "POST",
      path,
      authority: "x",
      headers: new Map(Object.entries(headers)),
      requestId: "r1",
      endOfStream,
    },
    route: { name: route },
    startedAt: 0,
    tenant: "anonymous",
    priority: "standard",
    extendDeadline: () => undefined,
  };
}

function response(headers: Record<string, string> = {}, status = 200, endOfStream = false): ResponseInfo {
  return { status, headers: new Map(Object.entries({ "content-type": "application/json", ...headers })), endOfStream };
}

const body = (value: unknown): Uint8Array =>
  new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));

async function roundTrip(
  stage: Stage,
  ex: Exchange,
  headers: Record<string, string>,
  payload: Uint8Array,
  status = 200,
): Promise<{ run: StageRun; first: Step; last: Step }> {
  const run = stage.start(ex);
  if (run === undefined) throw new Error("stage not started");
  const first = await run.onRequestHeaders!();
  const atHeaders = await run.onResponseHeaders!(response(headers, status));
  const last = atHeaders.type === "reply" ? atHeaders : await run.onResponseBody!(payload);
  run.onEnd?.({ answeredBy: "upstream", cancelled: false, status });
  return { run, first, last };
}

const metric = (registry: Registry, name: string): Promise<Sample[]> => registrySamples(registry, name);

t.test("unbound routes are not started; bound ones ask for the response", async (t) => {
  const { stage } = await setup({});
  t.equal(stage.start(exchange("open")), undefined);
  const run = stage.start(exchange());
  t.same(await run?.onRequestHeaders?.(), { type: "continue", needs: { responseHeaders: true, responseBody: true } });
});

t.test("conforming body passes with a header, exchange and metrics are set", async (t) => {
  const { stage, registry } = await setup({ action: "enforce" });
  const ex = exchange();
  const { last } = await roundTrip(stage, ex, { "x-model-version": "v1" }, body({ label: "POSITIVE", score: 0.9 }));
  t.same(last, { type: "continue", edits: { setHeaders: { "x-guard-contract": "passed" } } });
  t.equal(ex.contract, "passed");
  t.equal(ex.modelVersion, "v1");
  t.same(await metric(registry, "guard_contract_checks_total"), [
    { labels: { contract: "demo.v1.Sentiment", model_version: "v1", result: "passed" }, value: 1 },
  ]);
});

t.test("enforce: a violating body becomes a 502 problem, field by field", async (t) => {
  const { stage, registry } = await setup({ action: "enforce" });
  const ex = exchange();
  const { last } = await roundTrip(
    stage,
    ex,
    { "x-model-version": "v2" },
    body({ label: "positive", score: 93, extra: 1 }),
  );
  if (last.type !== "reply") return t.fail("expected a reply");
  t.equal(last.reply.status, 502);
  t.equal(last.reply.reason, "contract.violated");
  t.equal(last.reply.headers["content-type"], "application/problem+json");
  t.equal(last.reply.headers["cache-control"], "no-store");
  t.equal(last.reply.headers["x-guard-contract"], "violated; rules=json.unknown_field,string.in,double.gte_lte");
  const problem = JSON.parse(String(last.reply.body));
  t.equal(problem.type, "urn:inference-guard:problem:contract-violated");
  t.equal(problem.title, "Upstream response violates its output contract");
  t.equal(problem.status, 502);
  t.equal(problem.code, "contract.violated");
  t.equal(
    problem.detail,
    "3 violations of demo.v1.Sentiment from model version v2: " +
      'extra: unknown field "extra" (not in demo.v1.Sentiment) (json.unknown_field); ' +
      "label: must be in list [POSITIVE, NEGATIVE, NEUTRAL] (string.in); " +
      "score: must be greater than or equal to 0 and less than or equal to 1 (double.gte_lte)",
  );
  t.equal(problem.route, "sentiment");
  t.equal(problem.contract, "demo.v1.Sentiment");
  t.equal(problem.model_version, "v2");
  t.equal(problem.violation_count, 3);
  t.equal(problem.truncated, false);
  t.same(problem.violations, [
    { field: "extra", rule: "json.unknown_field", message: 'unknown field "extra" (not in demo.v1.Sentiment)' },
    { field: "label", rule: "string.in", message: "must be in list [POSITIVE, NEGATIVE, NEUTRAL]" },
    {
      field: "score",
      rule: "double.gte_lte",
      message: "must be greater than or equal to 0 and less than or equal to 1",
    },
  ]);
  t.equal(ex.contract, "violated");
  const violations = await metric(registry, "guard_contract_violations_total");
  t.same(violations.map((v) => v.labels.rule).sort(), ["double.gte_lte", "json.unknown_field", "string.in"]);
  t.ok(violations.every((v) => v.labels.model_version === "v2" && v.value === 1));
});

t.test("enforce with a custom status and the problem names no version when none is known", async (t) => {
  const { stage } = await setup({ action: "enforce", status: 422 });
  const { last } = await roundTrip(stage, exchange(), {}, body({ label: "NEUTRAL" }));
  if (last.type !== "reply") return t.fail("expected a reply");
  t.equal(last.reply.status, 422);
  const problem = JSON.parse(String(last.reply.body));
  t.equal(problem.status, 422);
  t.equal(problem.model_version, null);
  t.match(problem.detail, /^1 violation of demo\.v1\.Sentiment: /);
});

t.test("shadow: the body passes with the verdict header, bounded in length", async (t) => {
  const { stage } = await setup(
    { action: "shadow", modelVersionField: "meta.version" },
    { headerMaxLength: 40, maxViolations: 2 },
  );
  const ex = exchange();
  const { last } = await roundTrip(
    stage,
    ex,
    {},
    body({ label: "x", score: "NaN", a: 1, b: 2, meta: { version: "v9" } }),
  );
  if (last.type !== "continue") return t.fail("expected continue");
  const header = last.edits?.setHeaders?.["x-guard-contract"] ?? "";
  t.ok(header.length <= 40, header);
  t.match(header, /^violated; rules=json\.non_finite,\.\.\.$/);
  t.equal(ex.contract, "violated");
  t.equal(ex.modelVersion, "v9");
});

t.test("payload at an array item: embeddings with a wrap field, paths name the item", async (t) => {
  const registry = new Registry();
  const cfg = configSchema.parse({
    routes: [
      {
        name: "emb",
        match: {},
        contract: {
          message: "demo.v1.Embedding",
          payload: "data[*].embedding",
          wrapField: "values",
          action: "enforce",
        },
      },
    ],
  });
  const stage = createContractsStage(
    stageConfigs(cfg).contracts,
    { registry, log: pino({ level: "silent" }), now: () => 0 },
    await demoContracts(),
  );
  const { last } = await roundTrip(
    stage,
    exchange("emb", true, {}, "/v1/embeddings"),
    {},
    body({ data: [{ embedding: [0, 0, 0, 0, 0, 0, 0, 0] }, { embedding: [0, 0, 2, 0, 0, 0, 0, 0, 0] }] }),
  );
  if (last.type !== "reply") return t.fail("expected a reply");
  t.equal(last.reply.headers["content-type"], "application/json", "an OpenAI endpoint gets the OpenAI error shape");
  const { error } = JSON.parse(String(last.reply.body));
  t.match(error, { type: "server_error", code: "contract.violated", param: null, contract: "demo.v1.Embedding" });
  t.match(error.message, /^Upstream response violates its output contract: 2 violations of demo\.v1\.Embedding: /);
  t.match(error.message, /data\[1\]\.embedding\[2\]: .* \(float\.gte_lte\)/, "the SDK's message names rule and field");
  t.same(error.violations.map((v: { field: string; rule: string }) => `${v.field} ${v.rule}`).sort(), [
    "data[1].embedding repeated.max_items",
    "data[1].embedding[2] float.gte_lte",
  ]);
  const fields = (await metric(registry, "guard_contract_violations_total")).map((v) => v.labels.field).sort();
  t.same(fields, ["data[*].embedding", "data[*].embedding[*]"]);
});

t.test("compressed bodies are checked; a decompression bomb is its own reason", async (t) => {
  const ok = JSON.stringify({ label: "NEUTRAL", score: 0.5 });
  for (const [encoding, bytes] of [
    ["gzip", gzipSync(ok)],
    ["br", brotliCompressSync(ok)],
    ["deflate", deflateSync(ok)],
  ] as const) {
    const { stage } = await setup({ action: "enforce" });
    const { last } = await roundTrip(stage, exchange(), { "content-encoding": encoding }, bytes);
    t.same(last, { type: "continue", edits: { setHeaders: { "x-guard-contract": "passed" } } }, encoding);
  }
  const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024, 0x20));
  t.ok(bomb.byteLength < 100 * 1024, `bomb is ${bomb.byteLength} bytes`);
  const { stage, registry } = await setup({ action: "enforce" }, { maxDecompressedBytes: 1024 * 1024 });
  const ex = exchange();
  const { last } = await roundTrip(stage, ex, { "content-encoding": "gzip" }, bomb);
  if (last.type !== "reply") return t.fail("expected a reply");
  t.equal(last.reply.reason, "contract.unverifiable");
  const problem = JSON.parse(String(last.reply.body));
  t.equal(problem.type, problemType("contract.unverifiable"));
  t.equal(problem.reason, "body.decompression_limit");
  t.equal(ex.contract, "skipped");
  t.same(await metric(registry, "guard_contract_unverifiable_total"), [
    { labels: { contract: "demo.v1.Sentiment", reason: "body.decompression_limit" }, value: 1 },
  ]);
});

t.test("unverifiable policy: too large passes under shadow, rejects under enforce unless configured", async (t) => {
  const big = body({ label: "NEUTRAL", score: 0.5, pad: "x".repeat(2000) });
  const shadow = await setup({ action: "shadow" }, { maxBodyBytes: 1000 });
  t.same((await roundTrip(shadow.stage, exchange(), {}, big)).last, {
    type: "continue",
    edits: { setHeaders: { "x-guard-contract": "unverifiable; reason=body.too_large" } },
  });
  const enforce = await setup({ action: "enforce" }, { maxBodyBytes: 1000 });
  t.equal((await roundTrip(enforce.stage, exchange(), {}, big)).last.type, "reply");
  const lenient = await setup({ action: "enforce", unverifiable: "pass" }, { maxBodyBytes: 1000 });
  t.equal((await roundTrip(lenient.stage, exchange(), {}, big)).last.type, "continue");
  const unknownEncoding = await setup({ action: "shadow" });
  const { last } = await roundTrip(unknownEncoding.stage, exchange(), { "content-encoding": "zstd" }, body("x"));
  t.same(last, {
    type: "continue",
    edits: { setHeaders: { "x-guard-contract": "unverifiable; reason=body.unsupported_encoding" } },
  });
});

t.test("non-JSON and empty bodies are violations", async (t) => {
  const { stage } = await setup({ action: "enforce" });
  const { last } = await roundTrip(stage, exchange(), { "content-type": "text/html" }, body("<html>oops</html>"));
  if (last.type !== "reply") return t.fail("expected a reply");
  t.equal(JSON.parse(String(last.reply.body)).violations[0].rule, "json.syntax");
  const run = stage.start(exchange());
  await run?.onRequestHeaders?.();
  const step = await run?.onResponseHeaders?.(response({}, 200, true));
  t.equal(step?.type, "reply", "an empty 200 is checked at response headers");
});

t.test("upstream errors and unsampled requests are not checked", async (t) => {
  const { stage, registry } = await setup({ action: "enforce", sampleRate: 0.25 }, {}, () => 0.9);
  const run = stage.start(exchange());
  t.same(await run?.onRequestHeaders?.(), { type: "continue" });
  const sampled = await setup({ action: "enforce" });
  const ex = exchange();
  const { last } = await roundTrip(sampled.stage, ex, {}, body("upstream exploded"), 503);
  t.same(last, { type: "continue" });
  t.equal(ex.contract, "skipped");
  t.same(
    (await metric(registry, "guard_contract_checks_total")).map((v) => v.labels.result),
    ["not_sampled"],
  );
  t.same(
    (await metric(sampled.registry, "guard_contract_checks_total")).map((v) => v.labels.result),
    ["not_applicable"],
  );
});

t.test("model filter: response model or request model must match", async (t) => {
  const { stage } = await setup({ action: "enforce", models: ["sent-*"] });
  const bad = { label: "nope", score: 5 };
  t.equal(
    (await roundTrip(stage, exchange(), {}, body({ ...bad, model: "other-1" }))).last.type,
    "continue",
    "other model skipped",
  );
  t.equal(
    (await roundTrip(stage, exchange(), {}, body({ ...bad, model: "sent-2" }))).last.type,
    "reply",
    "matching model checked",
  );
  const run = stage.start(exchange("sentiment", false));
  t.same(await run?.onRequestHeaders?.(), {
    type: "continue",
    needs: { responseHeaders: true, responseBody: true, requestBody: true },
  });
  await run?.onRequestBody?.(body({ model: "sent-3", input: "x" }));
  await run?.onResponseHeaders?.(response());
  t.equal((await run?.onResponseBody?.(body(bad)))?.type, "reply", "request model used when the response names none");
});

t.test("model versions beyond the limit are labelled other", async (t) => {
  const { stage, registry } = await setup({}, { maxModelVersions: 2 });
  for (const version of ["a", "b", "c", "d"]) {
    await roundTrip(stage, exchange(), { "x-model-version": version }, body({ label: "NEUTRAL", score: 0.5 }));
  }
  const labels = (await metric(registry, "guard_contract_checks_total"))
    .map((v) => `${v.labels.model_version}=${v.value}`)
    .sort();
  t.same(labels, ["a=1", "b=1", "other=2"]);
});

describeStreams();

/** Streamed answers (text/event-stream) on a chat route binding demo.v1.TicketTriage to triage* models. */
function describeStreams(): void {
  const sse = { "content-type": "text/event-stream" };
  const encode = (text: string): Uint8Array => new TextEncoder().encode(text);
  const decode = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

  function chatEvents(content: string): string {
    const event = (delta: Record<string, unknown>, finish: string | null = null): string =>
      `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", created: 1, model: "triage-1", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    let out = event({ role: "assistant", content: "" });
    for (let i = 0; i < content.length; i += 6) out += event({ content: content.slice(i, i + 6) });
    return `${out}${event({}, "stop")}data: [DONE]\n\n`;
  }
  const triage = (variant: string): string => JSON.stringify(renderOutput("chat_structured", variant, { n: 1 }));

  async function chatSetup(contract: Record<string, unknown>, contracts: Record<string, unknown> = {}) {
    const registry = new Registry();
    const parsed = configSchema.parse({
      contracts,
      routes: [
        {
          name: "chat",
          match: { pathPrefix: "/v1/chat/completions" },
          contract: {
            message: "demo.v1.TicketTriage",
            payload: "choices[*].message.content<json>",
            models: ["triage*"],
            ...contract,
          },
        },
      ],
    });
    const stage = createContractsStage(
      stageConfigs(parsed).contracts,
      { registry, log: pino({ level: "silent" }), now: () => 0 },
      await demoContracts(),
    );
    return { registry, stage };
  }

  /** Runs one streamed exchange: request body with `model`, SSE response headers, then the chunks. */
  async function streamed(
    stage: Stage,
    model: string | undefined,
    chunks: readonly (string | Uint8Array)[],
    headers: Record<string, string> = sse,
  ) {
    const ex = exchange("chat", false, {}, "/v1/chat/completions");
    const run = stage.start(ex);
    if (run === undefined) throw new Error("stage not started");
    await run.onRequestHeaders?.();
    await run.onRequestBody?.(encode(JSON.stringify({ model, stream: true })));
    const atHeaders = await run.onResponseHeaders!(response(headers));
    const steps: ChunkStep[] = [];
    if (atHeaders.type === "continue" && atHeaders.responseBody === "stream") {
      for (const [index, chunk] of chunks.entries()) {
        const bytes = typeof chunk === "string" ? encode(chunk) : chunk;
        const step = await run.onResponseChunk!(bytes, index === chunks.length - 1);
        steps.push(step);
        if (step.type === "cut") break;
      }
    }
    return { ex, run, atHeaders, steps, out: decode(Buffer.concat(steps.map((step) => step.bytes))) };
  }

  /** The text's UTF-8 bytes in pieces of `size` (splitting characters, as a network does). */
  const split = (text: string, size: number): Uint8Array[] => {
    const bytes = encode(text);
    return Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size));
  };

  t.test("streams: a model the binding does not name leaves the body alone", async (t) => {
    const { stage, registry } = await chatSetup({ action: "enforce" });
    const { atHeaders } = await streamed(stage, "gpt-4o", []);
    t.same(atHeaders, { type: "continue", responseBody: "none" });
    t.match(await metric(registry, "guard_contract_checks_total"), [
      { labels: { result: "not_applicable" }, value: 1 },
    ]);
  });

  t.test("streams, enforce: a conforming stream passes byte for byte and is counted passed", async (t) => {
    const { stage, registry } = await chatSetup({ action: "enforce" });
    const text = chatEvents(triage("v1"));
    const { atHeaders, out, ex, steps } = await streamed(stage, "triage-1", split(text, 50));
    t.same(atHeaders, { type: "continue", responseBody: "stream" });
    t.equal(out, text);
    t.ok(steps.every((step) => step.type === "forward"));
    t.equal(ex.contract, "passed");
    t.match(await metric(registry, "guard_contract_checks_total"), [{ labels: { result: "passed" }, value: 1 }]);
  });

  t.test("streams, enforce: a violation cuts the stream with an error event naming it", async (t) => {
    const { stage, registry } = await chatSetup({ action: "enforce" });
    const { out, steps, ex } = await streamed(stage, "triage-1", split(chatEvents(triage("empty_summary")), 40), {
      ...sse,
      "x-model-version": "v2",
    });
    const cut = steps.at(-1);
    t.equal(cut?.type, "cut");
    t.equal(cut?.type === "cut" ? cut.reason : undefined, "contract.violated");
    const last = out.slice(out.lastIndexOf("event: error"));
    const error = (
      JSON.parse(last.split("\n")[1]?.slice("data: ".length) ?? "{}") as { error: Record<string, unknown> }
    ).error;
    t.match(error, {
      type: "contract_violation",
      code: "contract.violated",
      model_version: "v2",
      route: "chat",
      violations: [{ field: "choices[0].message.content<json>.summary", rule: "string.min_len" }],
    });
    t.notOk(out.includes("[DONE]"));
    t.equal(ex.contract, "violated");
    t.match(await metric(registry, "guard_contract_violations_total"), [
      { labels: { model_version: "v2", rule: "string.min_len" }, value: 1 },
    ]);
  });

  t.test("streams: shadow and observe never cut, and count the verdict", async (t) => {
    for (const contract of [{ action: "shadow" }, { action: "enforce", stream: "observe" }]) {
      const { stage, registry } = await chatSetup(contract);
      const text = chatEvents(triage("empty_summary"));
      const { out, steps } = await streamed(stage, "triage-1", split(text, 33));
      t.equal(out, text, `${JSON.stringify(contract)}: every byte`);
      t.ok(steps.every((step) => step.type === "forward"));
      t.match(await metric(registry, "guard_contract_checks_total"), [{ labels: { result: "violated" }, value: 1 }]);
    }
  });

  t.test("streams: the verdict goes into the trailers, which come after it", async (t) => {
    const shadow = await chatSetup({ action: "shadow" });
    const violated = await streamed(shadow.stage, "triage-1", split(chatEvents(triage("empty_summary")), 64));
    t.same(violated.run.onResponseTrailers?.(), {
      setHeaders: { "x-guard-contract": "violated; rules=string.min_len" },
    });
    const enforce = await chatSetup({ action: "enforce" });
    const passed = await streamed(enforce.stage, "triage-1", split(chatEvents(triage("v1")), 64));
    t.same(passed.run.onResponseTrailers?.(), { setHeaders: { "x-guard-contract": "passed" } });
    const unbound = await streamed(enforce.stage, "gpt-4o", []);
    t.equal(unbound.run.onResponseTrailers?.(), undefined, "no verdict, nothing to add");
    const unnamed = await chatSetup({ action: "shadow" }, { header: "" });
    const quiet = await streamed(unnamed.stage, "triage-1", split(chatEvents(triage("empty_summary")), 64));
    t.equal(quiet.run.onResponseTrailers?.(), undefined, 'contracts.header: "" turns the verdict header off');
  });

  t.test("streams, stream: buffer judges the whole stream before any byte, like a non-streamed body", async (t) => {
    const { stage } = await chatSetup({ action: "enforce", stream: "buffer" });
    const ex = exchange("chat", false, {}, "/v1/chat/completions");
    const run = stage.start(ex);
    await run?.onRequestHeaders?.();
    await run?.onRequestBody?.(encode(JSON.stringify({ model: "triage-1", stream: true })));
    t.same(await run?.onResponseHeaders?.(response(sse)), { type: "continue", responseBody: "whole" });
    const verdict = await run?.onResponseBody?.(encode(chatEvents(triage("empty_summary"))));
    t.equal(verdict?.type, "reply");
    if (verdict?.type !== "reply") return;
    t.equal(verdict.reply.status, 502);
    t.equal(verdict.reply.headers["x-should-retry"], "false");
    const passing = stage.start(exchange("chat", false, {}, "/v1/chat/completions"));
    await passing?.onRequestHeaders?.();
    await passing?.onRequestBody?.(encode(JSON.stringify({ model: "triage-1", stream: true })));
    await passing?.onResponseHeaders?.(response(sse));
    t.same(await passing?.onResponseBody?.(encode(chatEvents(triage("v1")))), {
      type: "continue",
      edits: { setHeaders: { "x-guard-contract": "passed" } },
    });
  });

  t.test("streams: a compressed stream cannot be read as it passes", async (t) => {
    const enforce = await chatSetup({ action: "enforce" });
    const rejected = await streamed(enforce.stage, "triage-1", [], { ...sse, "content-encoding": "gzip" });
    t.equal(rejected.atHeaders.type, "reply", "enforce: answered at the headers");
    const shadow = await chatSetup({ action: "shadow" });
    const passed = await streamed(shadow.stage, "triage-1", [], { ...sse, "content-encoding": "gzip" });
    t.match(passed.atHeaders, { type: "continue", responseBody: "none" });
    t.match(await metric(shadow.registry, "guard_contract_unverifiable_total"), [
      { labels: { reason: "body.streaming" }, value: 1 },
    ]);
  });

  t.test("streams: a stream the stage lets go on after a verdict loses no byte", async (t) => {
    const text = chatEvents(triage("longest"));
    const passing = await chatSetup({ action: "enforce", unverifiable: "pass" }, { maxBodyBytes: 300 });
    const tooLarge = await streamed(passing.stage, "triage-1", split(text, 100));
    t.equal(tooLarge.out, text, "unverifiable: pass sends on what it held");
    t.ok(tooLarge.steps.every((step) => step.type === "forward"));

    const { stage, registry } = await chatSetup({ action: "enforce" });
    const unnamed = text.replaceAll('"model":"triage-1"', '"model":"other-1"');
    const late = await streamed(stage, undefined, split(unnamed, 70));
    t.equal(late.out, unnamed, "a model the binding does not name, known only from the stream");
    t.match(await metric(registry, "guard_contract_checks_total"), [{ labels: { result: "not_applicable" } }]);
  });

  t.test("streams: the upstream's own error event ends the check as not applicable", async (t) => {
    const { stage, registry } = await chatSetup({ action: "enforce" });
    const { out } = await streamed(stage, "triage-1", ['data: {"error":{"message":"overloaded"}}\n\n', ""]);
    t.match(out, /overloaded/);
    t.match(await metric(registry, "guard_contract_checks_total"), [{ labels: { result: "not_applicable" } }]);
  });

  t.test("streams, enforce: more to hold than maxBodyBytes ends the stream as unverifiable", async (t) => {
    const { stage } = await chatSetup({ action: "enforce" }, { maxBodyBytes: 300 });
    const { steps, out } = await streamed(stage, "triage-1", split(chatEvents(triage("longest")), 100));
    const cut = steps.at(-1);
    t.equal(cut?.type === "cut" ? cut.reason : undefined, "contract.unverifiable");
    t.match(out, /"type":"contract_unverifiable"/);
  });
}

t.test("NDJSON streams: on a route that declares them, checked line by line and cut with an error line", async (t) => {
  const registry = new Registry();
  const streaming = { ndjson: { format: "ollama" as const, contentTypes: ["application/x-ndjson"] } };
  const parsed = configSchema.parse({
    routes: [
      {
        name: "ollama",
        match: { pathPrefix: "/api/chat" },
        streaming,
        contract: { message: "demo.v1.TicketTriage", payload: "message.content<json>", action: "enforce" },
      },
    ],
  });
  const stage = createContractsStage(
    stageConfigs(parsed).contracts,
    { registry, log: pino({ level: "silent" }), now: () => 0 },
    await demoContracts(),
  );
  const content = JSON.stringify(renderOutput("chat_structured", "empty_summary", { n: 1 }));
  let lines = "";
  for (let i = 0; i < content.length; i += 6)
    lines += `${JSON.stringify({ model: "triage-1", message: { role: "assistant", content: content.slice(i, i + 6) }, done: false })}\n`;
  lines += `${JSON.stringify({ model: "triage-1", message: { role: "assistant", content: "" }, done: true })}\n`;
  const ndjson = { "content-type": "application/x-ndjson" };

  const run = (declared: boolean) => {
    const ex = exchange("ollama", true, {}, "/api/chat");
    return stage.start(declared ? { ...ex, route: { name: "ollama", streaming } } : ex) as StageRun;
  };
  const declared = run(true);
  await declared.onRequestHeaders?.();
  t.same(await declared.onResponseHeaders?.(response({ ...ndjson, "x-model-version": "v2" })), {
    type: "continue",
    responseBody: "stream",
  });
  const bytes = new TextEncoder().encode(lines);
  const steps: ChunkStep[] = [];
  for (let at = 0; at < bytes.length; at += 37) {
    const step = await declared.onResponseChunk!(bytes.subarray(at, at + 37), at + 37 >= bytes.length);
    steps.push(step);
    if (step.type === "cut") break;
  }
  const out = new TextDecoder().decode(Buffer.concat(steps.map((step) => step.bytes)));
  t.equal(steps.at(-1)?.type, "cut");
  const sent = out.trimEnd().split("\n");
  const error = (JSON.parse(sent.at(-1) ?? "{}") as { error: Record<string, unknown> }).error;
  t.match(error, {
    type: "contract_violation",
    code: "contract.violated",
    model_version: "v2",
    violations: [{ field: "message.content<json>.summary", rule: "string.min_len" }],
  });
  t.notOk(out.includes('"summary":""'), "the violating value never goes on");
  t.ok(out.endsWith("}\n"), "the error is one last NDJSON line");

  const undeclared = run(false);
  await undeclared.onRequestHeaders?.();
  const step = await undeclared.onResponseHeaders?.(response(ndjson));
  t.same(step, { type: "continue" }, "undeclared: a plain body, checked whole");
});
