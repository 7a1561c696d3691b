// The vocabulary every pipeline stage speaks. Stages see plain TypeScript values only:
// the ext_proc wire format is translated in src/extproc and never leaks past it.

import type { TraceContext } from "../tracing/traceparent.js";
import type { AnswerCode } from "./answer-catalogue.js";
import type { Priority } from "./identity/priority.js";

/** Header names are lower-case; repeated headers are joined with ", " (RFC 9110 list semantics). */
export type HeaderMap = ReadonlyMap<string, string>;

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface RequestInfo {
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly headers: HeaderMap;
  /** Envoy's x-request-id, or a guard-made id when Envoy sent none; used for log correlation. */
  readonly requestId: string;
  /** True when the request headers frame already ended the stream (no body follows). */
  readonly endOfStream: boolean;
  /**
   * The ext_proc request attributes Envoy sent (the filter's request_attributes: source.principal,
   * xds.route_name, …), scalar values as strings; absent when Envoy sent none.
   */
  readonly attributes?: ReadonlyMap<string, string>;
  /**
   * The W3C trace context of the ext_proc call itself, from its gRPC metadata: with its tracer on,
   * Envoy puts its ext_proc span there (and not in the request headers it sends).
   */
  readonly callTrace?: TraceContext;
}

export interface ResponseInfo {
  readonly status: number;
  readonly headers: HeaderMap;
  readonly endOfStream: boolean;
}

/** Which later phases a stage wants Envoy to send for this request. */
export interface Needs {
  readonly requestBody?: boolean;
  readonly responseHeaders?: boolean;
  readonly responseBody?: boolean;
}

/** Edits a stage asks for on the message currently being processed. */
export interface Edits {
  readonly setHeaders?: Readonly<Record<string, string>>;
  readonly removeHeaders?: readonly string[];
  /** Re-run Envoy's route selection after header edits (complexity routing). Request phase only. */
  readonly clearRouteCache?: boolean;
  /** Merged into Envoy dynamic metadata under the guard's namespace. */
  readonly metadata?: Readonly<Record<string, JsonValue>>;
}

/** A complete answer produced by the guard instead of (or in place of) the upstream's. */
export interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | Uint8Array;
  /** The answer's code in the catalogue (answers.ts): metric label and x-guard-reason header. */
  readonly reason: AnswerCode;
}

/**
 * What a stage needs of the body of the response at hand, said at its headers: nothing, the whole
 * body before any of it reaches the client (onResponseBody), or its chunks as they pass
 * (onResponseChunk: a streamed answer, text/event-stream or a route's declared NDJSON, is forwarded
 * as it comes; response-shape.ts tells which responses are streams).
 */
export type ResponseBodyNeed = "none" | "whole" | "stream";

export type Step =
  | {
      readonly type: "continue";
      readonly edits?: Edits;
      readonly needs?: Needs;
      /**
       * At response headers only: this stage's need for this response's body. Absent: whole when
       * the stage asked for the response body at the request, none otherwise. The strongest need
       * of all stages decides (whole over stream over none).
       */
      readonly responseBody?: ResponseBodyNeed;
    }
  | { readonly type: "reply"; readonly reply: Reply };

/**
 * A stage's answer to one chunk of a streamed response: the bytes it lets through now (its input,
 * or fewer while it holds some back, or more when it releases held bytes), or the end of the
 * response: bytes to send last (e.g. an in-stream error event), after which the upstream is reset.
 */
export type ChunkStep =
  | { readonly type: "forward"; readonly bytes: Uint8Array }
  | { readonly type: "cut"; readonly bytes: Uint8Array; readonly reason: AnswerCode };

export const CONTINUE: Step = Object.freeze({ type: "continue" });

/** How one exchange ended; every started stage hears about it exactly once. */
export interface Outcome {
  /** Status the client got, when known. */
  readonly status?: number;
  /** Who produced the final answer. */
  readonly answeredBy: "upstream" | "guard" | "unknown";
  /** The guard's own reply reason when answeredBy is "guard". */
  readonly reason?: string;
  /** Stream ended before the exchange completed (client went away, Envoy reset, guard drain). */
  readonly cancelled: boolean;
  /**
   * The response body went through the guard chunk by chunk (a streamed answer): the exchange
   * ended with the stream's last chunk, or its cut (answeredBy "guard", status the 200 already sent).
   */
  readonly streamed?: boolean;
  /**
   * Time from the guard releasing the request to Envoy until the response headers arrived:
   * the upstream's latency as seen from the sidecar. Absent when no response headers were seen.
   */
  readonly upstreamLatencyMs?: number;
  /**
   * Time from the guard releasing the request until a streamed answer's last chunk passed: the
   * whole generation as seen from the sidecar (upstreamLatencyMs is only its first token). Present
   * for a streamed answer that the guard followed to its end.
   */
  readonly generationMs?: number;
}

/** How the complexity stage priced the request's output: the part of its cost the answer decides. */
export interface OutputPricing {
  /** Output tokens the cost assumed, all generations. */
  readonly expectedTokens: number;
  /** Cost units per output token. */
  readonly costPerToken: number;
}

/**
 * Per-request blackboard shared by stages. Stages that feed one another (complexity → admission,
 * contracts → cache) exchange typed values here instead of calling each other.
 */
export interface Exchange {
  readonly request: RequestInfo;
  readonly route: RouteRef;
  /** Monotonic ms (performance.now()) when the request headers arrived. */
  readonly startedAt: number;
  /**
   * The W3C trace id the exchange's log lines name: the guard's own span's when it traces, else
   * the trace the request continues (Envoy's, or a client's); absent when there is none.
   */
  readonly traceId?: string;
  response?: ResponseInfo;
  /** Estimated cost in cost units (set by the complexity stage). */
  cost?: number;
  /** The output term of `cost` (complexity stage), so the real cost can be told once usage is reported. */
  outputPricing?: OutputPricing;
  /** Prompt tokens (input, tools, images) as the complexity stage estimated them. */
  promptTokens?: number;
  /** Routing tier chosen by the complexity stage, e.g. "light" | "heavy". */
  tier?: string;
  /** The rollout pool the canary stage sent the request to (routes[].canary). */
  pool?: string;
  /**
   * True when a stage asked for the request body in order to price the request (complexity): the
   * cost is known at the body hook, so admission waits for it there rather than admitting at the
   * headers with the default cost.
   */
  costAwaitsBody?: boolean;
  /** Predicted unloaded upstream latency (complexity stage's online model), once that model is fitted. */
  predictedLatencyMs?: number;
  /** Model version seen on the response (contracts stage), already bounded for labels. */
  modelVersion?: string;
  /**
   * The same version as the response stated it (clipped, never bounded): what tells versions apart
   * where they are not a label, e.g. the cache's epochs (past the label bound, versions share
   * "other" in modelVersion).
   */
  statedModelVersion?: string;
  /**
   * Completion (output) tokens the upstream reported for this exchange's answer (usage stage): the
   * `usage` of a streamed answer's event (the latest one, as usage may be reported on every event)
   * or of a JSON body (completion_tokens, or the Responses API's output_tokens). Set as soon as the
   * usage stage reads it, so the stages after it in the line-up see it in their onEnd; absent when
   * the upstream reported none (never an estimate).
   */
  completionTokens?: number;
  /** Prompt (input) tokens the upstream reported, alongside completionTokens; never an estimate. */
  inputTokens?: number;
  /**
   * The `model` the request body asked for (complexity stage, which parses the body), cut to 256
   * characters: the client's own string, for traces only, never a metric label.
   */
  requestModel?: string;
  /** Result of the output-contract check on the response, when a contract is bound. */
  contract?: "passed" | "violated" | "skipped";
  /**
   * Tenant identity: a hash of the configured tenant source (never the raw credential), or
   * "anonymous". Derived once, before any stage runs (identity/identify.ts).
   */
  readonly tenant: string;
  /** Priority class, from the sources the operator trusts only; derived with the tenant. */
  readonly priority: Priority;
  /**
   * Call before holding the current message longer than Envoy's message_timeout (admission
   * queueing): the stream asks Envoy to extend its timer (ProcessingResponse.override_message_timeout,
   * honoured up to the filter's max_message_timeout).
   */
  readonly extendDeadline: (ms: number) => void;
}

/** The route a request matched; name is bounded by configuration and safe as a metric label. */
export interface RouteRef {
  readonly name: string;
  /** The route's declaration of streamed answers besides text/event-stream (routes[].streaming). */
  readonly streaming?: RouteStreaming;
}

/** What a route declares of the streams it carries (routes[].streaming); response-shape.ts reads it. */
export interface RouteStreaming {
  /** Answers of these media types are NDJSON streams, read as `format`; absent: NDJSON is a plain body. */
  readonly ndjson?: { readonly contentTypes: readonly string[]; readonly format: "generic" | "ollama" } | undefined;
}

type MaybePromise<T> = T | Promise<T>;

/**
 * One request's view of a stage. Hooks run in pipeline order on the request path and in reverse
 * order on the response path (an onion), so a stage that wraps the upstream call sees the
 * response after the stages inside it. A hook that throws is counted and skipped (fail-open);
 * it never breaks the stream.
 */
export interface StageRun {
  onRequestHeaders?(): MaybePromise<Step>;
  onRequestBody?(body: Uint8Array): MaybePromise<Step>;
  onResponseHeaders?(response: ResponseInfo): MaybePromise<Step>;
  onResponseBody?(body: Uint8Array): MaybePromise<Step>;
  /**
   * A chunk of a streamed response (see ResponseBodyNeed), innermost stage first: each stage gets
   * the bytes the stage inside it let through. endOfStream: no more chunks follow; anything still
   * held must be let through (or the response cut) now.
   */
  onResponseChunk?(chunk: Uint8Array, endOfStream: boolean): MaybePromise<ChunkStep>;
  /**
   * The trailers that end a streamed response, after its last chunk: the stage's edits to them
   * (the verdict of a streamed answer's check, which its headers went out too early to carry).
   * Only when the upstream sent trailers: Envoy sends none for a response without them, and drops
   * trailers an ext_proc server makes up (envoy#40046).
   */
  onResponseTrailers?(): Edits | undefined;
  onEnd?(outcome: Outcome): void;
}

export interface Stage {
  readonly name: string;
  /** Returns the stage's per-request run, or undefined when it has nothing to do for this request. */
  start(exchange: Exchange): StageRun | undefined;
  /** Awaited before the guard reports ready (e.g. connect a shared tier); must bound its own wait. */
  warmUp?(): Promise<void>;
  /** Releases connections and timers once the pipeline is replaced (reload) or the guard stops. */
  close?(): void | Promise<void>;
}

/**
 * A stage's own configuration: its top-level section, and each route's section of it by route name
 * (every route, in configuration order; the stage decides what "enabled" means).
 */
export interface StageConfig<Section, RouteSection> {
  readonly section: Section;
  readonly routes: ReadonlyMap<string, RouteSection>;
}

/** What a stage factory is given besides its own configuration. */
export interface StageDeps {
  /** The guard's private prom-client registry; stages register guard_* metrics on it. */
  readonly registry: import("prom-client").Registry;
  readonly log: import("pino").Logger;
  /** Monotonic clock in ms, injectable for tests (defaults to performance.now). */
  readonly now: () => number;
}
