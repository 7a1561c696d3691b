// The OpenTelemetry SDK behind the runner's ExchangeTracer: one SERVER span per exchange, continuing
// the W3C trace context of the request Envoy asks about, with a child span per stage hook that ran.
// Built only when tracing is on (serve.ts), with the OTLP exporter of the configured protocol loaded
// then: a guard with tracing off never loads the SDK.
import {
  type Context,
  createTraceState,
  DiagLogLevel,
  diag,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  createAlwaysRecordSampler,
  ParentBasedSampler,
  type ReadableSpan,
  type Sampler,
  type SpanExporter,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import type { Logger } from "pino";
import type { Exchange, Outcome } from "../pipeline/types.js";
import type { DecisionHeaders, ExchangeStart, ExchangeTrace, ExchangeTracer, StageTiming } from "./api.js";
import {
  ATTRIBUTES,
  type Attributes,
  alwaysSampledKind,
  outcomeAttributes,
  requestAttributes,
  stepAttributes,
} from "./attributes.js";
import type { AlwaysSampled } from "./config.js";
import type { TracingSettings } from "./settings.js";
import { parentContextOf, parseTraceparent } from "./traceparent.js";

/** The span of the whole exchange; its children are named "<stage> <phase>". */
export const EXCHANGE_SPAN = "guard.exchange";

/** The head sampler of the settings; with alwaysSample, the spans it drops are still recorded (not exported). */
function samplerFor(settings: Pick<TracingSettings, "sampler" | "ratio" | "alwaysSample">): Sampler {
  const ratio = new TraceIdRatioBasedSampler(settings.ratio);
  const bySetting: Record<TracingSettings["sampler"], Sampler> = {
    always_on: new AlwaysOnSampler(),
    always_off: new AlwaysOffSampler(),
    traceidratio: ratio,
    parentbased_always_on: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
    parentbased_always_off: new ParentBasedSampler({ root: new AlwaysOffSampler() }),
    parentbased_traceidratio: new ParentBasedSampler({ root: ratio }),
  };
  const head = bySetting[settings.sampler];
  return settings.alwaysSample.length === 0 ? head : createAlwaysRecordSampler(head);
}

/** The exporter of the protocol, loaded on demand (the gRPC one brings a gRPC client). */
async function exporterFor(settings: TracingSettings): Promise<SpanExporter> {
  const config = { url: settings.url };
  switch (settings.protocol) {
    case "grpc":
      return new (await import("@opentelemetry/exporter-trace-otlp-grpc")).OTLPTraceExporter(config);
    case "http/json":
      return new (await import("@opentelemetry/exporter-trace-otlp-http")).OTLPTraceExporter(config);
    case "http/protobuf":
      return new (await import("@opentelemetry/exporter-trace-otlp-proto")).OTLPTraceExporter(config);
  }
}

/**
 * The span as it was, marked sampled: the batch processor exports only sampled spans, and a span's
 * context is fixed when it starts, before a shed or a violation can be known.
 */
function markedSampled(span: ReadableSpan): ReadableSpan {
  const context = { ...span.spanContext(), traceFlags: span.spanContext().traceFlags | TraceFlags.SAMPLED };
  return {
    name: span.name,
    kind: span.kind,
    spanContext: () => context,
    ...(span.parentSpanContext === undefined ? {} : { parentSpanContext: span.parentSpanContext }),
    startTime: span.startTime,
    endTime: span.endTime,
    status: span.status,
    attributes: span.attributes,
    links: span.links,
    events: span.events,
    duration: span.duration,
    ended: span.ended,
    resource: span.resource,
    instrumentationScope: span.instrumentationScope,
    droppedAttributesCount: span.droppedAttributesCount,
    droppedEventsCount: span.droppedEventsCount,
    droppedLinksCount: span.droppedLinksCount,
  };
}

/** The SDK's spans are its ReadableSpan too; the API's Span type does not say so. */
function readable(span: Span): ReadableSpan {
  return span as unknown as ReadableSpan;
}

class OtelExchangeTrace implements ExchangeTrace {
  readonly traceId: string;
  readonly spanId: string;
  readonly #span: Span;
  readonly #context: Context;
  readonly #tracer: Tracer;
  readonly #headers: DecisionHeaders;
  readonly #export: (spans: readonly ReadableSpan[]) => void;
  readonly #alwaysSample: readonly AlwaysSampled[];
  /** Spans recorded but not sampled, kept until the outcome says whether alwaysSample exports them. */
  readonly #held: ReadableSpan[] | undefined;
  readonly #decisions: Attributes = {};

  constructor(
    span: Span,
    tracer: Tracer,
    start: ExchangeStart,
    alwaysSample: readonly AlwaysSampled[],
    exportSpans: (spans: readonly ReadableSpan[]) => void,
  ) {
    const context = span.spanContext();
    this.traceId = context.traceId;
    this.spanId = context.spanId;
    this.#span = span;
    this.#context = trace.setSpan(ROOT_CONTEXT, span);
    this.#tracer = tracer;
    this.#headers = start.decisionHeaders;
    this.#alwaysSample = alwaysSample;
    this.#export = exportSpans;
    this.#held = (context.traceFlags & TraceFlags.SAMPLED) === 0 ? [] : undefined;
  }

  stage(timing: StageTiming): void {
    const attributes = timing.step === undefined ? {} : stepAttributes(timing.step, this.#headers);
    Object.assign(this.#decisions, attributes);
    const span = this.#tracer.startSpan(
      `${timing.stage} ${timing.phase}`,
      {
        kind: SpanKind.INTERNAL,
        startTime: timing.startMs,
        attributes: { [ATTRIBUTES.stage]: timing.stage, [ATTRIBUTES.phase]: timing.phase, ...attributes },
      },
      this.#context,
    );
    if (timing.error !== undefined) {
      const error = timing.error instanceof Error ? timing.error : new Error(String(timing.error));
      span.recordException(error, timing.endMs);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    }
    span.end(timing.endMs);
    this.#held?.push(readable(span));
  }

  streamCut(reason: string, atMs: number): void {
    this.#decisions[ATTRIBUTES.streamCut] = reason;
    this.#span.addEvent("guard.stream.cut", { [ATTRIBUTES.reason]: reason }, atMs);
  }

  end(exchange: Exchange, outcome: Outcome, atMs: number): void {
    this.#span.setAttributes({ ...this.#decisions, ...outcomeAttributes(exchange, outcome) });
    if (outcome.status !== undefined && outcome.status >= 500) this.#span.setStatus({ code: SpanStatusCode.ERROR });
    this.#span.end(atMs);
    const held = this.#held;
    if (held === undefined) return;
    const kind = alwaysSampledKind(exchange, outcome);
    if (kind !== undefined && this.#alwaysSample.includes(kind)) this.#export([...held, readable(this.#span)]);
  }
}

export interface OtelTracerOptions {
  readonly serviceVersion: string;
  /** Export failures and the SDK's own warnings go here. */
  readonly log: Logger;
  /** Replaces the OTLP exporter (tests, benchmarks). */
  readonly exporter?: SpanExporter;
}

export async function createOtelTracer(settings: TracingSettings, options: OtelTracerOptions): Promise<ExchangeTracer> {
  const { log } = options;
  // The SDK reports export failures through its global diagnostic logger, silent unless set.
  diag.setLogger(
    {
      error: (message, ...args) => log.error({ otel: args }, `tracing: ${message}`),
      warn: (message, ...args) => log.warn({ otel: args }, `tracing: ${message}`),
      info: () => undefined,
      debug: () => undefined,
      verbose: () => undefined,
    },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  const processor: SpanProcessor = new BatchSpanProcessor({
    exporter: options.exporter ?? (await exporterFor(settings)),
    scheduledDelayMillis: settings.scheduleDelayMs,
  });
  const provider = new TracerProvider({
    sampler: samplerFor(settings),
    resource: defaultResource().merge(
      resourceFromAttributes({
        ...settings.resourceAttributes,
        "service.name": settings.serviceName,
        "service.version": options.serviceVersion,
      }),
    ),
    spanProcessors: [processor],
  });
  const tracer = provider.getTracer("inference-guard", options.serviceVersion);
  const exportSpans = (spans: readonly ReadableSpan[]): void => {
    for (const span of spans) processor.onEnd(markedSampled(span));
  };
  return {
    start(start: ExchangeStart): ExchangeTrace | undefined {
      const inherited = parentContextOf(start.request);
      const parent = parseTraceparent(inherited?.traceparent);
      const tracestate = inherited?.tracestate;
      const context =
        parent === undefined
          ? ROOT_CONTEXT
          : trace.setSpanContext(ROOT_CONTEXT, {
              traceId: parent.traceId,
              spanId: parent.spanId,
              traceFlags: parent.flags,
              isRemote: true,
              ...(tracestate === undefined ? {} : { traceState: createTraceState(tracestate) }),
            });
      const span = tracer.startSpan(
        EXCHANGE_SPAN,
        {
          kind: SpanKind.SERVER,
          startTime: start.startedAt,
          attributes: requestAttributes(start.request, start.route),
        },
        context,
      );
      if (!span.isRecording()) return undefined;
      return new OtelExchangeTrace(span, tracer, start, settings.alwaysSample, exportSpans);
    },
    async shutdown(timeoutMs: number): Promise<void> {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
        timer.unref();
      });
      await Promise.race([provider.shutdown(), timeout]);
      clearTimeout(timer);
    },
  };
}
