// The OpenTelemetry tracer under the real pipeline runner: which spans an exchange makes, how they
// join the trace Envoy started, and what the sampling settings export.
import { type ExportResult, ExportResultCode } from "@opentelemetry/core";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace";
import pino from "pino";
import t from "tap";
import { createCoreMetrics } from "../../../src/metrics/registry.js";
import { Pipeline } from "../../../src/pipeline/pipeline.js";
import type { Outcome, RequestInfo, Stage, Step } from "../../../src/pipeline/types.js";
import { createOtelTracer, EXCHANGE_SPAN } from "../../../src/tracing/otel.js";
import type { TracingSettings } from "../../../src/tracing/settings.js";
import { route } from "../../helpers/frames.js";
import { registrySamples } from "../../helpers/registry-metrics.js";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const ENVOY_SPAN = "00f067aa0ba902b7";
const DECISION_HEADERS = {
  cache: "x-guard-cache",
  cacheTier: "x-guard-cache-tier",
  cacheReason: "x-guard-cache-reason",
  contract: "x-guard-contract",
};

/** Keeps what the batch processor exported. */
class Collected implements SpanExporter {
  readonly spans: ReadableSpan[] = [];
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.spans.push(...spans);
    done({ code: ExportResultCode.SUCCESS });
  }
  async shutdown(): Promise<void> {}
}

const stage = (name: string, run: Stage["start"]): Stage => ({ name, start: run });
const shedding = stage("admission", () => ({
  onRequestHeaders: (): Step => ({
    type: "reply",
    reply: { status: 429, headers: {}, body: "", reason: "shed.queue_full" },
  }),
}));
const admitting = stage("admission", () => ({
  onRequestHeaders: (): Step => ({
    type: "continue",
    edits: { metadata: { admission: { priority: "standard", cost: 3, wait_ms: 7 } } },
    needs: { responseHeaders: true },
  }),
  onResponseHeaders: (): Step => ({ type: "continue" }),
}));
const annotating = stage("annotate", () => ({ onResponseHeaders: (): Step => ({ type: "continue" }) }));
const failing = stage("complexity", () => ({
  onRequestHeaders: (): Step => {
    throw new Error("estimate failed", { cause: new RangeError("bad tokens") });
  },
}));

async function guard(settings: Partial<TracingSettings>, stages: Stage[]) {
  const exporter = new Collected();
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const tracer = await createOtelTracer(
    {
      url: "http://127.0.0.1:1/v1/traces",
      protocol: "http/protobuf",
      serviceName: "guard-test",
      resourceAttributes: {},
      sampler: "parentbased_traceidratio",
      ratio: 1,
      alwaysSample: [],
      scheduleDelayMs: 5_000,
      ...settings,
    },
    { serviceVersion: "9.9.9", log, exporter },
  );
  const metrics = createCoreMetrics("test");
  const pipeline = new Pipeline([route("chat")], stages, {
    metrics,
    log,
    now: () => performance.now(),
    tracing: { tracer, decisionHeaders: DECISION_HEADERS },
  });
  return {
    metrics,
    lines,
    pipeline,
    async exchange(traceparent?: string, outcome?: Outcome) {
      const request: RequestInfo = {
        method: "POST",
        path: "/v1/chat/completions",
        authority: "guard",
        headers: new Map(traceparent === undefined ? [] : [["traceparent", traceparent]]),
        requestId: "req-1",
        endOfStream: true,
      };
      const run = pipeline.open(request, () => undefined);
      if (run === undefined) throw new Error("no route");
      const result = await run.requestHeaders();
      if (result.type === "reply") {
        run.end({ answeredBy: "guard", status: result.reply.status, reason: result.reply.reason, cancelled: false });
        return run;
      }
      await run.responseHeaders({ status: 200, headers: new Map(), endOfStream: true });
      run.end(outcome ?? { answeredBy: "upstream", status: 200, cancelled: false });
      return run;
    },
    async exported(): Promise<ReadableSpan[]> {
      await tracer.shutdown(5_000);
      return exporter.spans;
    },
  };
}

const byName = (spans: readonly ReadableSpan[], name: string) => spans.find((span) => span.name === name);

t.test("the exchange continues Envoy's trace, with a span per stage hook that ran", async (t) => {
  const g = await guard({}, [annotating, admitting]);
  await g.exchange(`00-${TRACE}-${ENVOY_SPAN}-01`);
  const spans = await g.exported();
  t.same(spans.map((span) => span.name).sort(), [
    "admission request_headers",
    "admission response_headers",
    "annotate response_headers",
    EXCHANGE_SPAN,
  ]);
  const root = byName(spans, EXCHANGE_SPAN) as ReadableSpan;
  t.equal(root.spanContext().traceId, TRACE);
  t.equal(root.parentSpanContext?.spanId, ENVOY_SPAN, "a child of Envoy's span");
  t.equal(root.kind, 1, "SERVER");
  t.equal(root.resource.attributes["service.name"], "guard-test");
  t.equal(root.resource.attributes["service.version"], "9.9.9");
  t.match(root.attributes, {
    "guard.route": "chat",
    "guard.request_id": "req-1",
    "url.path": "/v1/chat/completions",
    "guard.admission.decision": "admitted",
    "guard.admission.wait_ms": 7,
    "guard.answered_by": "upstream",
    "http.response.status_code": 200,
  });
  for (const span of spans.filter((span) => span !== root)) {
    t.equal(span.parentSpanContext?.spanId, root.spanContext().spanId, `${span.name} under the exchange`);
    t.ok(span.startTime[0] * 1e9 + span.startTime[1] >= root.startTime[0] * 1e9 + root.startTime[1]);
  }
  t.match(byName(spans, "admission request_headers")?.attributes, {
    "guard.stage": "admission",
    "guard.phase": "request_headers",
  });
});

t.test("a shed: the answer on the exchange span and the admission span", async (t) => {
  const g = await guard({}, [shedding]);
  await g.exchange();
  const spans = await g.exported();
  const root = byName(spans, EXCHANGE_SPAN) as ReadableSpan;
  t.equal(root.parentSpanContext, undefined, "no traceparent: a trace of its own");
  t.match(root.attributes, {
    "guard.answer.reason": "shed.queue_full",
    "guard.admission.decision": "shed",
    "guard.answered_by": "guard",
    "http.response.status_code": 429,
  });
  t.match(byName(spans, "admission request_headers")?.attributes, { "guard.answer.reason": "shed.queue_full" });
});

t.test("a stage that throws: its span has the error; the exchange's log line has stack, cause and ids", async (t) => {
  const g = await guard({}, [failing]);
  const run = await g.exchange(`00-${TRACE}-${ENVOY_SPAN}-01`);
  const spans = await g.exported();
  const failed = byName(spans, "complexity request_headers") as ReadableSpan;
  t.equal(failed.status.code, 2, "ERROR");
  t.equal(failed.events[0]?.name, "exception");
  const line = g.lines.find((entry) => entry.msg === "stage failed; request continues without it");
  t.match(line, {
    requestId: "req-1",
    route: "chat",
    trace_id: TRACE,
    span_id: byName(spans, EXCHANGE_SPAN)?.spanContext().spanId,
    stage: "complexity",
    err: { message: "estimate failed: bad tokens", stack: /estimate failed[\s\S]*caused by: RangeError: bad tokens/ },
  });
  t.equal(run.log, run.log, "one child logger per exchange");
  t.match(
    g.lines.find((entry) => entry.msg === "exchange ended"),
    { trace_id: TRACE, answeredBy: "upstream", status: 200 },
  );
});

t.test("sampling: an unsampled parent, or a ratio of 0, records nothing", async (t) => {
  const g = await guard({ ratio: 0 }, [shedding]);
  const run = await g.exchange(`00-${TRACE}-${ENVOY_SPAN}-00`);
  await g.exchange();
  t.same(await g.exported(), []);
  t.equal(run.log.bindings().trace_id, TRACE, "the log still carries Envoy's trace id");
  t.equal(run.log.bindings().span_id, undefined);
});

t.test("parent-based: Envoy's sampled flag wins over the ratio", async (t) => {
  const g = await guard({ ratio: 0 }, [annotating]);
  await g.exchange(`00-${TRACE}-${ENVOY_SPAN}-01`);
  t.same((await g.exported()).map((span) => span.name).sort(), ["annotate response_headers", EXCHANGE_SPAN]);
});

t.test("alwaysSample: sheds and violations the sampler dropped are exported, nothing else", async (t) => {
  const g = await guard({ sampler: "parentbased_always_off", alwaysSample: ["shed", "contract_violation"] }, [
    shedding,
  ]);
  await g.exchange(`00-${TRACE}-${ENVOY_SPAN}-00`);
  const spans = await g.exported();
  t.same(spans.map((span) => span.name).sort(), ["admission request_headers", EXCHANGE_SPAN]);
  for (const span of spans) t.equal(span.spanContext().traceFlags & 1, 1, `${span.name} marked sampled`);
  t.equal(byName(spans, EXCHANGE_SPAN)?.spanContext().traceId, TRACE, "still in Envoy's trace");

  const admitted = await guard({ sampler: "always_off", alwaysSample: ["shed", "contract_violation"] }, [admitting]);
  await admitted.exchange();
  t.same(await admitted.exported(), [], "an admitted exchange the sampler dropped stays dropped");

  const violated = await guard({ sampler: "always_off", alwaysSample: ["contract_violation"] }, [admitting]);
  await violated.exchange(undefined, {
    answeredBy: "guard",
    status: 200,
    reason: "contract.violated",
    streamed: true,
    cancelled: false,
  });
  t.equal((await violated.exported()).length, 3, "the exchange and its two stage spans");

  const shedOnlyViolations = await guard({ sampler: "always_off", alwaysSample: ["contract_violation"] }, [shedding]);
  await shedOnlyViolations.exchange();
  t.same(await shedOnlyViolations.exported(), [], "sheds not asked for");
});

t.test(
  "a streamed answer cut by a stage: the cut on the exchange, trailers' verdict, chunks in the histogram",
  async (t) => {
    const cutting = stage("contracts", () => ({
      onRequestHeaders: (): Step => ({ type: "continue", needs: { responseHeaders: true } }),
      onResponseHeaders: (): Step => ({ type: "continue", responseBody: "stream" }),
      onResponseChunk: (chunk: Uint8Array, end: boolean) =>
        end ? { type: "cut", bytes: chunk, reason: "contract.violated" } : { type: "forward", bytes: chunk },
      onResponseTrailers: () => ({ setHeaders: { "x-guard-contract": "violated; rules=string.min_len" } }),
    }));
    const g = await guard({}, [cutting]);
    const run = g.pipeline.open(
      {
        method: "POST",
        path: "/v1/chat/completions",
        authority: "",
        headers: new Map(),
        requestId: "s",
        endOfStream: true,
      },
      () => undefined,
    );
    if (run === undefined) throw new Error("no route");
    await run.requestHeaders();
    await run.responseHeaders({
      status: 200,
      headers: new Map([["content-type", "text/event-stream"]]),
      endOfStream: false,
    });
    t.equal((await run.responseChunk(new Uint8Array([1]), false)).type, "forward");
    t.equal((await run.responseChunk(new Uint8Array([2]), true)).type, "cut");
    run.responseTrailers();
    run.end({ answeredBy: "guard", status: 200, reason: "contract.violated", streamed: true, cancelled: false });
    const spans = await g.exported();
    const root = byName(spans, EXCHANGE_SPAN) as ReadableSpan;
    t.match(root.attributes, {
      "guard.stream.cut": "contract.violated",
      "guard.stream": true,
      "guard.contract.rules": ["string.min_len"],
    });
    t.same(
      root.events.map((event) => [event.name, event.attributes?.["guard.answer.reason"]]),
      [["guard.stream.cut", "contract.violated"]],
    );
    t.same(byName(spans, "contracts response_trailers")?.attributes["guard.contract.rules"], ["string.min_len"]);
    t.notOk(
      spans.some((span) => span.name.includes("response_chunk")),
      "no span per chunk",
    );
    const chunks = await registrySamples(g.metrics.registry, "guard_stage_duration_seconds_count", {
      stage: "contracts",
      phase: "response_chunk",
    });
    t.equal(chunks[0]?.value, 2, "both chunks timed");
  },
);

t.test("guard_stage_duration_seconds: every hook that ran, by stage and phase; none for absent hooks", async (t) => {
  const g = await guard({}, [annotating, admitting]);
  await g.exchange();
  const counts = await registrySamples(g.metrics.registry, "guard_stage_duration_seconds_count");
  t.same(counts.map((sample) => `${sample.labels.stage} ${sample.labels.phase} ${sample.value}`).sort(), [
    "admission request_headers 1",
    "admission response_headers 1",
    "annotate response_headers 1",
  ]);
});
