// Runs the stages for one exchange: request hooks in pipeline order, response hooks in reverse, edits
// merged, the first reply wins, a throwing hook is counted and skipped. Knows nothing of ext_proc.
import type { Logger } from "pino";
import type { CoreMetrics } from "../metrics/registry.js";
import type { DecisionHeaders, ExchangeTrace, ExchangeTracer, TracedPhase } from "../tracing/api.js";
import { parentContextOf, parseTraceparent } from "../tracing/traceparent.js";
import type { AnswerCode } from "./answer-catalogue.js";
import { ANONYMOUS_TENANT, type Identify } from "./identity/identify.js";
import { DEFAULT_PRIORITY } from "./identity/priority.js";
import { type MatchableRoute, matchRoute } from "./routing/match.js";
import {
  type ChunkStep,
  CONTINUE,
  type Edits,
  type Exchange,
  type JsonValue,
  type Needs,
  type Outcome,
  type Reply,
  type RequestInfo,
  type ResponseBodyNeed,
  type ResponseInfo,
  type RouteStreaming,
  type Stage,
  type StageRun,
  type Step,
} from "./types.js";

export interface MergedEdits {
  readonly setHeaders: Record<string, string>;
  readonly removeHeaders: string[];
  clearRouteCache: boolean;
  readonly metadata: Record<string, JsonValue>;
}

export type PhaseResult =
  | { readonly type: "continue"; readonly edits: MergedEdits }
  | { readonly type: "reply"; readonly reply: Reply };

/** What the response headers decided: the phase's result, and what the stages need of the body. */
export type ResponseHeadersResult =
  | { readonly type: "continue"; readonly edits: MergedEdits; readonly body: ResponseBodyNeed }
  | { readonly type: "reply"; readonly reply: Reply };

const BODY_NEED_STRENGTH: Readonly<Record<ResponseBodyNeed, number>> = { none: 0, stream: 1, whole: 2 };

type Phase = "request_headers" | "request_body" | "response_headers" | "response_body";

/** The `phase` label of guard_stage_duration_seconds: the traced phases, and two that get no span. */
type TimedPhase = TracedPhase | "response_chunk" | "end";

interface StartedRun {
  readonly stage: string;
  readonly run: StageRun;
  /** The stage asked for the response body at the request: its need when it says nothing at the response. */
  askedForResponseBody: boolean;
}

function emptyEdits(): MergedEdits {
  return { setHeaders: {}, removeHeaders: [], clearRouteCache: false, metadata: {} };
}

function mergeEdits(into: MergedEdits, edits: Edits | undefined): void {
  if (edits === undefined) return;
  Object.assign(into.setHeaders, edits.setHeaders);
  if (edits.removeHeaders !== undefined) into.removeHeaders.push(...edits.removeHeaders);
  if (edits.clearRouteCache === true) into.clearRouteCache = true;
  Object.assign(into.metadata, edits.metadata);
}

function codeClass(status: number | undefined): string {
  return status === undefined ? "unknown" : `${Math.floor(status / 100)}xx`;
}

/** One request travelling through the stages. */
export class ExchangeRun {
  readonly #runs: StartedRun[];
  readonly #pipeline: Pipeline;
  #needs: { requestBody: boolean; responseHeaders: boolean; responseBody: boolean } = {
    requestBody: false,
    responseHeaders: false,
    responseBody: false,
  };
  #ended = false;
  readonly #trace: ExchangeTrace | undefined;
  /** The guard's own side request (SideRequestGate): no client's, so not counted as one. */
  readonly #side: boolean;
  #log: Logger | undefined;

  /** `runs` may still grow while the stages start (they log through this run). */
  constructor(
    readonly exchange: Exchange,
    runs: StartedRun[],
    pipeline: Pipeline,
    trace?: ExchangeTrace,
    side = false,
  ) {
    this.#runs = runs;
    this.#pipeline = pipeline;
    this.#trace = trace;
    this.#side = side;
  }

  /**
   * The exchange's logger: request id, route and trace id on every line. Made on first use, since
   * most exchanges log nothing. Without a span of the guard's, the trace id is the one Envoy sent.
   */
  get log(): Logger {
    if (this.#log !== undefined) return this.#log;
    this.#log = this.#pipeline.log.child({
      requestId: this.exchange.request.requestId,
      route: this.exchange.route.name,
      ...(this.exchange.traceId === undefined ? {} : { trace_id: this.exchange.traceId }),
      ...(this.#trace === undefined ? {} : { span_id: this.#trace.spanId }),
    });
    return this.#log;
  }

  get needs(): Readonly<Required<Needs>> {
    return this.#needs;
  }

  requestHeaders(): Promise<PhaseResult> {
    return this.#phase("request_headers", this.#runs, (run) => run.onRequestHeaders?.());
  }

  requestBody(body: Uint8Array): Promise<PhaseResult> {
    return this.#phase("request_body", this.#runs, (run) => run.onRequestBody?.(body));
  }

  async responseHeaders(response: ResponseInfo): Promise<ResponseHeadersResult> {
    this.exchange.response = response;
    let body: ResponseBodyNeed = "none";
    const result = await this.#phase(
      "response_headers",
      this.#runs.toReversed(),
      (run) => run.onResponseHeaders?.(response),
      (started, step) => {
        const need =
          step?.type === "continue" && step.responseBody !== undefined
            ? step.responseBody
            : started.askedForResponseBody
              ? "whole"
              : "none";
        if (BODY_NEED_STRENGTH[need] > BODY_NEED_STRENGTH[body]) body = need;
      },
    );
    return result.type === "reply" ? result : { ...result, body };
  }

  /** The whole response body (the stages' need was "whole"). */
  responseBody(body: Uint8Array): Promise<PhaseResult> {
    return this.#phase("response_body", this.#runs.toReversed(), (run) => run.onResponseBody?.(body));
  }

  /**
   * One chunk of a streamed response (the stages' need was "stream"), through the stages inside
   * out. A stage that throws is counted and lets its input through. The first cut decides the
   * end: the stages outside it still get its bytes, as the stream's last chunk, since they are
   * what the client gets (usage times the first token by them, and must see the released
   * output that precedes an error event).
   */
  async responseChunk(chunk: Uint8Array, endOfStream: boolean): Promise<ChunkStep> {
    let bytes = chunk;
    let cut: AnswerCode | undefined;
    for (let index = this.#runs.length - 1; index >= 0; index--) {
      const started = this.#runs[index] as StartedRun;
      if (started.run.onResponseChunk === undefined) continue;
      const startMs = this.#pipeline.now();
      let step: ChunkStep;
      try {
        step = await started.run.onResponseChunk(bytes, endOfStream || cut !== undefined);
      } catch (error) {
        this.#pipeline.stageFailed(started.stage, "response_chunk", error, this.log);
        continue;
      } finally {
        this.#timed(started.stage, "response_chunk", startMs);
      }
      if (step.type === "cut" && cut === undefined) {
        cut = step.reason;
        this.#trace?.streamCut(cut, this.#pipeline.now());
      }
      bytes = step.bytes;
    }
    return cut === undefined ? { type: "forward", bytes } : { type: "cut", bytes, reason: cut };
  }

  /** The trailers of a streamed response: every stage's edits to them, innermost first. */
  responseTrailers(): MergedEdits {
    const edits = emptyEdits();
    for (const { stage, run } of this.#runs.toReversed()) {
      if (run.onResponseTrailers === undefined) continue;
      const startMs = this.#pipeline.now();
      try {
        const stageEdits = run.onResponseTrailers();
        mergeEdits(edits, stageEdits);
        this.#timed(
          stage,
          "response_trailers",
          startMs,
          stageEdits === undefined ? CONTINUE : { type: "continue", edits: stageEdits },
        );
      } catch (error) {
        this.#pipeline.stageFailed(stage, "response_trailers", error, this.log);
        this.#timed(stage, "response_trailers", startMs, undefined, error);
      }
    }
    return edits;
  }

  /** Idempotent: the first call wins, so stream close after a completed exchange is harmless. */
  end(outcome: Outcome): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#side) return;
    const route = this.exchange.route.name;
    const metrics = this.#pipeline.metrics;
    metrics.requests.inc({ route, answered_by: outcome.answeredBy, code_class: codeClass(outcome.status) });
    if (outcome.answeredBy === "guard" && outcome.reason !== undefined) {
      metrics.replies.inc({ route, reason: outcome.reason, status: String(outcome.status ?? 0) });
    }
    for (const { stage, run } of this.#runs) {
      if (run.onEnd === undefined) continue;
      const startMs = this.#pipeline.now();
      try {
        run.onEnd(outcome);
      } catch (error) {
        this.#pipeline.stageFailed(stage, "end", error, this.log);
      }
      this.#timed(stage, "end", startMs);
    }
    this.#trace?.end(this.exchange, outcome, this.#pipeline.now());
    if (this.#pipeline.log.isLevelEnabled("debug"))
      this.log.debug(
        {
          answeredBy: outcome.answeredBy,
          status: outcome.status,
          reason: outcome.reason,
          cancelled: outcome.cancelled,
          streamed: outcome.streamed,
        },
        "exchange ended",
      );
  }

  /**
   * One hook's time into guard_stage_duration_seconds and, for the traced phases, the exchange's
   * trace. `step` is what the hook returned, undefined when it threw (`error`).
   */
  #timed(stage: string, phase: TimedPhase, startMs: number, step?: Step, error?: unknown): void {
    const endMs = this.#pipeline.now();
    this.#pipeline.metrics.stageSeconds.labels({ stage, phase }).observe((endMs - startMs) / 1000);
    if (this.#trace === undefined || phase === "response_chunk" || phase === "end") return;
    this.#trace.stage({ stage, phase, startMs, endMs, step, ...(error === undefined ? {} : { error }) });
  }

  /** `seen` hears every stage's step (undefined when it had none or failed), in the order run. */
  async #phase(
    phase: Phase,
    runs: readonly StartedRun[],
    hook: (run: StageRun) => Step | Promise<Step> | undefined,
    seen?: (started: StartedRun, step: Step | undefined) => void,
  ): Promise<PhaseResult> {
    const edits = emptyEdits();
    for (const started of runs) {
      const startMs = this.#pipeline.now();
      let step: Step | undefined;
      let failure: unknown;
      try {
        step = await hook(started.run);
      } catch (error) {
        failure = error;
        this.#pipeline.stageFailed(started.stage, phase, error, this.log);
      }
      // A hook the stage does not have returns no step: it did no work, and is not timed.
      if (step !== undefined || failure !== undefined) this.#timed(started.stage, phase, startMs, step, failure);
      if (step?.type === "continue" && step.needs?.responseBody === true) started.askedForResponseBody = true;
      seen?.(started, step);
      if (step === undefined) continue;
      if (step.type === "reply") return step;
      mergeEdits(edits, step.edits);
      if (step.needs !== undefined) this.#addNeeds(step.needs);
    }
    return { type: "continue", edits };
  }

  #addNeeds(needs: Needs): void {
    this.#needs = {
      requestBody: this.#needs.requestBody || needs.requestBody === true,
      responseHeaders: this.#needs.responseHeaders || needs.responseHeaders === true,
      responseBody: this.#needs.responseBody || needs.responseBody === true,
    };
  }
}

/** A route as the runner sees it: how it matches, and what it declares of its streams. */
export interface PipelineRouteRef extends MatchableRoute {
  readonly streaming?: RouteStreaming;
}

/** Tracing as the runner holds it; absent when tracing is off, and the runner then does no tracing work. */
export interface PipelineTracing {
  readonly tracer: ExchangeTracer;
  readonly decisionHeaders: DecisionHeaders;
}

/**
 * Recognises the guard's own side requests (a rollout's shadow comparison sends them through
 * Envoy): the route it is for (named by the request itself, so no route match can miss it) and the
 * request-header edits that send it to its pool; undefined for a client's request.
 */
export type SideRequestGate = (request: RequestInfo) => { readonly route: string; readonly edits: Edits } | undefined;

export interface PipelineDeps {
  readonly metrics: CoreMetrics;
  readonly log: Logger;
  readonly now: () => number;
  readonly tracing?: PipelineTracing | undefined;
  readonly sideRequest?: SideRequestGate | undefined;
}

/** Who every request is when the pipeline has no identity configuration (tests of the runner alone). */
const NO_IDENTITY: Identify = () => ({ tenant: ANONYMOUS_TENANT, priority: DEFAULT_PRIORITY });

/** An immutable set of routes and stages; a config reload builds a new one. */
export class Pipeline {
  readonly metrics: CoreMetrics;
  readonly log: Logger;
  readonly now: () => number;
  readonly #tracing: PipelineTracing | undefined;
  readonly #identify: Identify;
  readonly #sideRequest: SideRequestGate | undefined;

  constructor(
    readonly routes: readonly PipelineRouteRef[],
    readonly stages: readonly Stage[],
    deps: PipelineDeps,
    identify: Identify = NO_IDENTITY,
  ) {
    this.metrics = deps.metrics;
    this.log = deps.log;
    this.now = deps.now;
    this.#tracing = deps.tracing;
    this.#identify = identify;
    this.#sideRequest = deps.sideRequest;
  }

  /** Undefined when no route matches: the stream then passes the request through untouched. */
  open(request: RequestInfo, extendDeadline: (ms: number) => void): ExchangeRun | undefined {
    const side = this.#sideRequest?.(request);
    if (side !== undefined) return this.#sideRun(request, side.route, side.edits, extendDeadline);
    const route = matchRoute(this.routes, request);
    if (route === undefined) return undefined;
    // Once, before any stage: every stage reads the same tenant and class.
    const { tenant, priority } = this.#identify(request, route.name);
    const startedAt = this.now();
    const tracing = this.#tracing;
    const trace = tracing?.tracer.start({
      request,
      route: route.name,
      startedAt,
      decisionHeaders: tracing.decisionHeaders,
    });
    const traceId = trace?.traceId ?? parseTraceparent(parentContextOf(request)?.traceparent)?.traceId;
    const exchange: Exchange = {
      request,
      route: route.streaming === undefined ? { name: route.name } : { name: route.name, streaming: route.streaming },
      startedAt,
      ...(traceId === undefined ? {} : { traceId }),
      tenant,
      priority,
      extendDeadline,
    };
    const runs: StartedRun[] = [];
    const exchangeRun = new ExchangeRun(exchange, runs, this, trace);
    for (const stage of this.stages) {
      try {
        const run = stage.start(exchange);
        if (run !== undefined) runs.push({ stage: stage.name, run, askedForResponseBody: false });
      } catch (error) {
        this.stageFailed(stage.name, "start", error, exchangeRun.log);
      }
    }
    return exchangeRun;
  }

  /**
   * The guard's side request: routed to its pool and let go, no stage started (no cache, no
   * admission, no budget, no contract), not counted as a client's request, not traced; its answer
   * goes back to the guard that sent it.
   */
  #sideRun(request: RequestInfo, route: string, edits: Edits, extendDeadline: (ms: number) => void): ExchangeRun {
    const exchange: Exchange = {
      request,
      route: { name: route },
      startedAt: this.now(),
      tenant: ANONYMOUS_TENANT,
      priority: DEFAULT_PRIORITY,
      extendDeadline,
    };
    const run: StageRun = { onRequestHeaders: () => ({ type: "continue", edits }) };
    return new ExchangeRun(exchange, [{ stage: "canary", run, askedForResponseBody: false }], this, undefined, true);
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.stages.map((stage) => stage.close?.()));
  }

  /** `log` is the exchange's (ExchangeRun.log): the line carries its request and trace ids. */
  stageFailed(stage: string, phase: string, error: unknown, log: Logger): void {
    this.metrics.stageErrors.inc({ stage, phase });
    log.warn({ stage, phase, err: error }, "stage failed; request continues without it");
  }
}
