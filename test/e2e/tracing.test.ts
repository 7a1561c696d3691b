// Traces through a real Envoy 1.40 and a real Jaeger v2 (scripts/install-jaeger.sh): Envoy's
// OpenTelemetry tracer and the guard both export to Jaeger, and Jaeger's query API must show one
// trace per request holding Envoy's span and the guard's, with the decision attributes, for a shed,
// a cache hit and a contract violation; the guard's log line for the exchange carries the trace id.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import t, { type Test } from "tap";
import { parse, stringify } from "yaml";
import { configSchema } from "../../src/config/schema.js";
import { PROJECT_ROOT } from "../../src/devstack/envoy.js";
import { freePort } from "../../src/devstack/ports.js";
import { httpOk, spawnManaged, waitUntil } from "../../src/devstack/process.js";
import { createCoreMetrics } from "../../src/metrics/registry.js";
import { Pipeline } from "../../src/pipeline/pipeline.js";
import { tracingSchema } from "../../src/tracing/config.js";
import { startTracing } from "../../src/tracing/start.js";
import { type Answer, post, stackFor } from "../helpers/e2e.js";

const JAEGER = join(PROJECT_ROOT, ".tools", "jaeger", "jaeger");

interface EnvoyConfig {
  layered_runtime: { layers: Array<{ static_layer?: Record<string, unknown> }> };
}

/** Envoy's tracer sends its spans every 5 s by default; the test waits for them. */
function flushedQuickly(yaml: string): string {
  const config = parse(yaml) as EnvoyConfig;
  const runtime = config.layered_runtime.layers[0]?.static_layer;
  if (runtime === undefined) throw new Error("envoy.yaml: the static runtime layer moved");
  runtime["tracing.opentelemetry.flush_interval_ms"] = 200;
  return stringify(config);
}

interface Jaeger {
  readonly otlpHttp: string;
  readonly otlpGrpcPort: number;
  readonly query: string;
}

/** Jaeger v2 all-in-one: in-memory storage, OTLP receivers and the query API on free loopback ports. */
async function startJaeger(t: Test): Promise<Jaeger> {
  const [grpc, http, query, queryGrpc] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const config = {
    service: {
      extensions: ["jaeger_storage", "jaeger_query"],
      pipelines: {
        traces: { receivers: ["otlp"], processors: ["batch"], exporters: ["jaeger_storage_exporter"] },
      },
      telemetry: { metrics: { level: "none" }, logs: { level: "warn" } },
    },
    extensions: {
      jaeger_storage: { backends: { memstore: { memory: { max_traces: 10_000 } } } },
      jaeger_query: {
        storage: { traces: "memstore" },
        http: { endpoint: `127.0.0.1:${query}` },
        grpc: { endpoint: `127.0.0.1:${queryGrpc}` },
      },
    },
    receivers: {
      otlp: {
        protocols: { grpc: { endpoint: `127.0.0.1:${grpc}` }, http: { endpoint: `127.0.0.1:${http}` } },
      },
    },
    processors: { batch: { timeout: "100ms" } },
    exporters: { jaeger_storage_exporter: { trace_storage: "memstore" } },
  };
  const dir = await mkdtemp(join(tmpdir(), "jaeger-"));
  const file = join(dir, "jaeger.yaml");
  await writeFile(file, stringify(config));
  const jaeger = spawnManaged("jaeger", JAEGER, ["--config", file]);
  t.teardown(async () => {
    await jaeger.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${query}`;
  await waitUntil("jaeger query API", () => httpOk(`${url}/api/services`), 30_000, jaeger);
  return { otlpHttp: `http://127.0.0.1:${http}`, otlpGrpcPort: grpc, query: url };
}

interface JaegerSpan {
  readonly spanID: string;
  readonly operationName: string;
  readonly processID: string;
  readonly references: ReadonlyArray<{ readonly spanID: string }>;
  readonly tags: ReadonlyArray<{ readonly key: string; readonly value: unknown }>;
}

interface JaegerTrace {
  readonly spans: readonly JaegerSpan[];
  readonly processes: Readonly<Record<string, { readonly serviceName: string }>>;
}

const tag = (span: JaegerSpan | undefined, key: string): unknown =>
  span?.tags.find((entry) => entry.key === key)?.value;

/** The trace once it holds `wanted` spans of both services (Envoy's tracer and the guard export in batches). */
async function traceOf(jaeger: Jaeger, traceId: string, wanted: (trace: JaegerTrace) => boolean): Promise<JaegerTrace> {
  let last: JaegerTrace | undefined;
  for (let attempt = 0; attempt < 100; attempt++) {
    const response = await fetch(`${jaeger.query}/api/traces/${traceId}`);
    if (response.ok) {
      last = ((await response.json()) as { data: JaegerTrace[] }).data[0];
      if (last !== undefined && wanted(last)) return last;
    } else await response.arrayBuffer();
    await sleep(100);
  }
  throw new Error(`trace ${traceId} never complete in Jaeger: ${JSON.stringify(last)}`);
}

const serviceOf = (trace: JaegerTrace, span: JaegerSpan): string => trace.processes[span.processID]?.serviceName ?? "";
const guardSpan = (trace: JaegerTrace, name: string) =>
  trace.spans.find((span) => serviceOf(trace, span) === "inference-guard" && span.operationName === name);
const hasBoth = (trace: JaegerTrace): boolean =>
  guardSpan(trace, "guard.exchange") !== undefined && trace.spans.some((span) => serviceOf(trace, span) === "envoy");
/**
 * The guard's exchange span and the span it names as its parent: Envoy exports its spans as each
 * ends, in batches, so its ingress span can be in Jaeger before the ext_proc call's.
 */
const hasExchangeAndParent = (trace: JaegerTrace): boolean => {
  const parent = guardSpan(trace, "guard.exchange")?.references[0]?.spanID;
  return parent !== undefined && trace.spans.some((span) => span.spanID === parent);
};

/** A client's W3C trace context: the trace the request belongs to, sampled. */
function traceparent(): { readonly traceId: string; readonly spanId: string; readonly header: string } {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return { traceId, spanId, header: `00-${traceId}-${spanId}-01` };
}

const CHAT = "/v1/chat/completions";

t.test("Envoy's span and the guard's share one trace in Jaeger, with the guard's decisions", async (t) => {
  const jaeger = await startJaeger(t);
  const stack = await stackFor(t, {
    otlpCollectorPort: jaeger.otlpGrpcPort,
    editEnvoyConfig: flushedQuickly,
    guardConfig: {
      log: { level: "debug" },
      // Exported within 100 ms rather than the default 5 s: the test waits for the spans.
      tracing: { endpoint: jaeger.otlpHttp, protocol: "http/protobuf", scheduleDelayMs: 100 },
      contracts: { protoPaths: ["proto/contracts"] },
      // One request at a time on the completions route, and a 100 ms wait: a second one is shed.
      admission: {
        limit: { initial: 1, min: 1, max: 1 },
        requestWeight: 0,
        classes: { standard: { maxWaitMs: 100, maxWaitLatencies: 1_000 } },
      },
      routes: [
        {
          name: "chat",
          match: { pathPrefix: CHAT, methods: ["POST"] },
          cache: { enabled: true },
          contract: {
            message: "demo.v1.TicketTriage",
            payload: "choices[*].message.content<json>",
            models: ["triage*"],
            action: "enforce",
          },
        },
        {
          name: "completions",
          match: { pathPrefix: "/v1/completions", methods: ["POST"] },
          admission: { enabled: true },
        },
      ],
    },
  });
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  const send = (path: string, body: unknown, headers: Record<string, string>): Promise<Answer> =>
    post(`${stack.url}${path}`, body, headers, 15_000);

  t.test("a shed", async (t) => {
    const slow = send("/v1/completions", { model: "demo", prompt: "hold the budget" }, { "x-demo-latency-ms": "1500" });
    await sleep(300);
    const context = traceparent();
    const shed = await send("/v1/completions", { model: "demo", prompt: "shed me" }, { traceparent: context.header });
    t.match(shed.headers.get("x-guard-reason"), /^shed\./);
    t.equal((await slow).status, 200);

    const trace = await traceOf(jaeger, context.traceId, hasBoth);
    const exchange = guardSpan(trace, "guard.exchange");
    t.equal(tag(exchange, "guard.route"), "completions");
    t.equal(tag(exchange, "guard.admission.decision"), "shed");
    t.equal(tag(exchange, "guard.answer.reason"), shed.headers.get("x-guard-reason"));
    t.equal(tag(exchange, "http.response.status_code"), shed.status);
    t.equal(tag(exchange, "guard.answered_by"), "guard");
    // Envoy 1.40 sends ext_proc its own span's context in the gRPC metadata of the ext_proc call (not
    // in the request headers): the guard's exchange nests under Envoy's span of that call.
    const ingress = trace.spans.find((span) => serviceOf(trace, span) === "envoy" && span.operationName === "ingress");
    t.equal(ingress?.references[0]?.spanID, context.spanId, "Envoy's ingress span continues the client's");
    const call = trace.spans.find((span) => span.spanID === exchange?.references[0]?.spanID);
    t.equal(serviceOf(trace, call ?? ({} as JaegerSpan)), "envoy", "the guard's exchange is a child of Envoy's span");
    t.match(call?.operationName, /ExternalProcessor/, `Envoy's ext_proc call span: ${call?.operationName}`);
    const admission = guardSpan(trace, "admission request_headers");
    t.equal(admission?.references[0]?.spanID, exchange?.spanID, "the admission span is the exchange's child");
    t.equal(tag(admission, "guard.admission.decision"), "shed");

    const lines = guard
      .process()
      .output()
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const ended = lines.find((line) => line.msg === "exchange ended" && line.trace_id === context.traceId);
    t.match(ended, { span_id: exchange?.spanID, route: "completions", answeredBy: "guard", reason: /^shed\./ });
    t.ok(
      lines.some(
        (line) =>
          line.msg === "decision: shed" && line.requestId === ended?.requestId && line.trace_id === context.traceId,
      ),
      "the shed decision line names the same request and trace",
    );
  });

  t.test("without a client's context, the guard continues the trace Envoy started", async (t) => {
    const answer = await send(CHAT, { model: "demo", messages: [{ role: "user", content: "Envoy starts it" }] }, {});
    t.equal(answer.status, 200);
    const line = guard
      .process()
      .output()
      .split("\n")
      .filter((text) => text.startsWith("{"))
      .map((text) => JSON.parse(text) as Record<string, unknown>)
      .findLast((entry) => entry.msg === "exchange ended" && entry.route === "chat");
    const traceId = String(line?.trace_id);
    t.match(traceId, /^[0-9a-f]{32}$/, "the exchange's log line names the trace");
    const trace = await traceOf(jaeger, traceId, hasExchangeAndParent);
    const exchange = guardSpan(trace, "guard.exchange");
    const call = trace.spans.find((span) => span.spanID === exchange?.references[0]?.spanID);
    t.equal(
      call === undefined ? undefined : serviceOf(trace, call),
      "envoy",
      "one trace: Envoy's, the guard's inside it",
    );
    const ingress = trace.spans.find((span) => serviceOf(trace, span) === "envoy" && span.operationName === "ingress");
    t.equal(ingress?.references.length ?? 0, 0, "Envoy's ingress span is the trace's root");
  });

  t.test("a cache hit", async (t) => {
    const body = { model: "demo", temperature: 0, messages: [{ role: "user", content: "trace a cache hit" }] };
    t.equal((await send(CHAT, body, {})).headers.get("x-guard-cache"), "miss");
    const context = traceparent();
    const hit = await send(CHAT, body, { traceparent: context.header });
    t.equal(hit.headers.get("x-guard-cache"), "hit");
    const trace = await traceOf(jaeger, context.traceId, hasBoth);
    const exchange = guardSpan(trace, "guard.exchange");
    t.equal(tag(exchange, "guard.route"), "chat");
    t.equal(tag(exchange, "guard.cache.result"), "hit");
    t.equal(tag(exchange, "guard.cache.tier"), "local");
    t.equal(tag(exchange, "guard.answer.reason"), "cache.hit");
    t.equal(tag(guardSpan(trace, "cache request_body"), "guard.cache.result"), "hit");
  });

  t.test("a contract violation", async (t) => {
    const context = traceparent();
    const violated = await send(
      CHAT,
      { model: "triage-2024", messages: [{ role: "user", content: "trace a broken answer" }] },
      { "x-demo-task": "chat_structured", "x-demo-variant": "empty_summary", traceparent: context.header },
    );
    t.equal(violated.status, 502);
    const trace = await traceOf(jaeger, context.traceId, hasBoth);
    const exchange = guardSpan(trace, "guard.exchange");
    t.equal(tag(exchange, "guard.contract.verdict"), "violated");
    t.match(String(tag(exchange, "guard.contract.rules")), /\w/, "rule ids");
    t.ok(tag(exchange, "guard.model.version"), "the model version");
    t.equal(tag(exchange, "guard.answer.reason"), "contract.violated");
    t.equal(tag(exchange, "http.response.status_code"), 502);
    t.ok(guardSpan(trace, "contracts response_body"), "the contract check's span");
  });

  t.test("spans still queued when the guard is stopped are exported as it drains", async (t) => {
    const draining = await stackFor(t, {
      // Nothing would be exported for a minute, but for the flush on SIGTERM.
      guardConfig: { tracing: { endpoint: jaeger.otlpHttp, scheduleDelayMs: 60_000 }, routes: [{ name: "chat" }] },
    });
    const context = traceparent();
    const answer = await post(
      `${draining.url}${CHAT}`,
      { model: "demo", messages: [] },
      { traceparent: context.header },
    );
    t.equal(answer.headers.get("x-guard-route"), "chat", "the guard took the exchange");
    t.equal(await draining.guard?.process().stop("SIGTERM", 10_000), 0, "drained and exited");
    const trace = await traceOf(jaeger, context.traceId, (found) => guardSpan(found, "guard.exchange") !== undefined);
    t.equal(tag(guardSpan(trace, "guard.exchange"), "guard.route"), "chat");
  });

  t.test("every OTLP protocol reaches Jaeger, configured by the OTEL_* variables alone", async (t) => {
    const log = pino({ level: "silent" });
    const routes = configSchema.parse({ routes: [{ name: "chat" }] }).routes;
    const decisionHeaders = { cache: "x-guard-cache", cacheTier: "x-guard-cache-tier", cacheReason: "", contract: "" };
    for (const [protocol, endpoint] of [
      ["grpc", `http://127.0.0.1:${jaeger.otlpGrpcPort}`],
      ["http/json", jaeger.otlpHttp],
      ["http/protobuf", jaeger.otlpHttp],
    ] as const) {
      const serviceName = `guard-${protocol.replace("/", "-")}`;
      const tracer = await startTracing(
        tracingSchema.parse({}),
        {
          OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
          OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
          OTEL_SERVICE_NAME: serviceName,
        },
        log,
        "e2e",
      );
      if (tracer === undefined) throw new Error(`${protocol}: tracing off`);
      const metrics = createCoreMetrics("e2e");
      const pipeline = new Pipeline(routes, [], {
        metrics,
        log,
        now: () => performance.now(),
        tracing: { tracer, decisionHeaders },
      });
      const context = traceparent();
      const run = pipeline.open(
        {
          method: "POST",
          path: CHAT,
          authority: "",
          headers: new Map([["traceparent", context.header]]),
          requestId: protocol,
          endOfStream: true,
        },
        () => undefined,
      );
      await run?.requestHeaders();
      run?.end({ answeredBy: "upstream", status: 200, cancelled: false });
      await tracer.shutdown(5_000);
      const trace = await traceOf(jaeger, context.traceId, (found) =>
        found.spans.some((span) => serviceOf(found, span) === serviceName),
      );
      const exchange = trace.spans.find((span) => span.operationName === "guard.exchange");
      t.equal(tag(exchange, "guard.request_id"), protocol, `${protocol}: the exchange span, with its attributes`);
      t.equal(exchange?.references[0]?.spanID, context.spanId, `${protocol}: in the client's trace`);
    }
  });
});
