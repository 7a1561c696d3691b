// One ext_proc stream = one HTTP exchange. An explicit state machine turns Envoy's frames into
// pipeline calls and pipeline results into answer frames. It must answer every frame Envoy waits
// for (or Envoy stalls until message_timeout) and must never throw: anything unexpected is
// answered with a neutral "continue" and counted.
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { CoreMetrics } from "../metrics/registry.js";
import { answerFormatFor, guardAnswer } from "../pipeline/answers.js";
import type { ExchangeRun, MergedEdits, PhaseResult, Pipeline } from "../pipeline/pipeline.js";
import { responseStream } from "../pipeline/response-shape.js";
import type { Outcome, ResponseBodyNeed } from "../pipeline/types.js";
import type { TraceContext } from "../tracing/traceparent.js";
import type { ModeOverrideWatch } from "./override-watch.js";
import {
  commonResponse,
  decodeAttributes,
  decodeHeaders,
  type FrameKind,
  immediateResponse,
  type ProcessingRequest,
  type ProcessingResponse,
  streamedBody,
  toWireStruct,
  trailersResponse,
  type WireHttpBody,
  type WireProcessingMode,
} from "./wire.js";

/** Dynamic metadata namespace the guard writes (Envoy's metadata_options must allow it). */
export const METADATA_NAMESPACE = "inference_guard";

type State = "request_headers" | "request_body" | "response_headers" | "response_body" | "response_stream" | "done";

/** States entered after asking Envoy (by mode_override) for a phase it would not send otherwise. */
const AWAITING_ENVOY: ReadonlySet<State> = new Set([
  "request_body",
  "response_headers",
  "response_body",
  "response_stream",
]);

/** The frame whose answer Envoy waits for in each state; none in a streamed response or once done. */
const AWAITED_FRAME: Readonly<Partial<Record<State, FrameKind>>> = {
  request_headers: "requestHeaders",
  request_body: "requestBody",
  response_headers: "responseHeaders",
  response_body: "responseBody",
};

/**
 * Envoy that dropped a mode_override sees nothing more to do and closes the stream within
 * milliseconds of the guard's answer (measured: 2–15 ms); a client that gives up waiting for the
 * upstream leaves later.
 */
const QUICK_CLOSE_MS = 1_000;

export interface StreamDeps {
  /** The pipeline in force when the stream opens (hot reload swaps it for new streams only). */
  readonly pipeline: () => Pipeline;
  readonly metrics: CoreMetrics;
  readonly log: Logger;
  readonly now: () => number;
  /** Upper bound for buffering streamed body chunks the guard did not ask Envoy to buffer. */
  readonly maxStreamedBodyBytes?: number;
  /**
   * Envoy's per_connection_buffer_limit_bytes (config envoy.bufferLimitBytes). A request body the
   * guard asks Envoy to buffer must fit: Envoy 1.40 does not answer 413 when a mode_override
   * switches to BUFFERED after the body already hit the limit; the request hangs until
   * stream_idle_timeout. Bodies announced larger are refused with 413 at the headers.
   */
  readonly requestBufferLimitBytes?: () => number;
  /**
   * Envoy's message_timeout (config envoy.messageTimeoutMs). override_message_timeout replaces
   * Envoy's timer rather than extending it, so an extension is never sent shorter than this:
   * a 400 ms queue wait asking for 500 ms would otherwise cut Envoy's 1 s wait to 500 ms.
   */
  readonly messageTimeoutMs?: () => number;
  /** Shared by all streams: notices an Envoy that drops the guard's mode_override (override-watch.ts). */
  readonly overrideWatch?: ModeOverrideWatch;
}

/** The guard's own answer for a body it would need buffered but Envoy cannot hold. */
function tooLargeReply(limit: number, path: string): PhaseResult {
  return {
    type: "reply",
    reply: guardAnswer("request.too_large", {
      format: answerFormatFor(path),
      detail: `the request body exceeds the ${limit}-byte buffer limit`,
      extensions: { limit_bytes: limit },
    }),
  };
}

const PASS_THROUGH_MODE: WireProcessingMode = {
  requestHeaderMode: "SEND",
  responseHeaderMode: "SKIP",
  requestBodyMode: "NONE",
  responseBodyMode: "NONE",
  requestTrailerMode: "SKIP",
  responseTrailerMode: "SKIP",
};

function continueFor(kind: FrameKind): ProcessingResponse {
  switch (kind) {
    case "requestHeaders":
    case "requestBody":
    case "responseHeaders":
    case "responseBody":
      return { [kind]: { response: { status: "CONTINUE" } } };
    case "requestTrailers":
    case "responseTrailers":
      return { [kind]: {} };
  }
}

function frameKind(frame: ProcessingRequest): FrameKind | undefined {
  if (frame.request !== undefined) return frame.request;
  // Decoders without oneof discriminators still set exactly one field.
  const kinds: FrameKind[] = [
    "requestHeaders",
    "requestBody",
    "requestTrailers",
    "responseHeaders",
    "responseBody",
    "responseTrailers",
  ];
  return kinds.find((kind) => frame[kind] !== undefined);
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0] ?? new Uint8Array();
  return Buffer.concat(chunks);
}

/**
 * Handles the frames of one stream. Feed frames in order with handle(); answers go to send().
 * Call close() when the stream ends for any reason; it is idempotent.
 */
export class StreamProcessor {
  #state: State = "request_headers";
  #run: ExchangeRun | undefined;
  #releasedAt: number | undefined;
  #upstreamLatencyMs: number | undefined;
  #responseStatus: number | undefined;
  #bodyChunks: Uint8Array[] = [];
  #bodyBytes = 0;
  /**
   * When the guard's latest answer asked Envoy for a phase it had not been sending (a body, the
   * response headers) and no frame has come since: Envoy closing the stream quickly instead means
   * it dropped the mode_override (override-watch.ts).
   */
  #askedAt: number | undefined;
  #askedEnvoy = false;
  #observabilityCounted = false;
  #closed = false;
  readonly #deps: StreamDeps;
  readonly #send: (frame: ProcessingResponse) => void;
  readonly #onDone: (() => void) | undefined;
  readonly #callTrace: TraceContext | undefined;

  /**
   * onDone is called once the exchange needs nothing more from Envoy, after the last answer was
   * sent: the transport ends the stream from the guard's side then (see service.ts).
   */
  constructor(
    deps: StreamDeps,
    send: (frame: ProcessingResponse) => void,
    onDone?: () => void,
    callTrace?: TraceContext,
  ) {
    this.#callTrace = callTrace;
    this.#deps = deps;
    this.#send = send;
    this.#onDone = onDone;
    deps.metrics.activeStreams.inc();
  }

  get state(): State {
    return this.#state;
  }

  async handle(frame: ProcessingRequest): Promise<void> {
    // A transport may still deliver a buffered frame after cancellation; nothing can answer it.
    if (this.#closed) return;
    const kind = frameKind(frame);
    const { metrics } = this.#deps;
    if (kind === undefined) {
      metrics.anomalies.inc({ kind: "unknown_frame" });
      this.#answerUnknown();
      return;
    }
    metrics.messages.inc({ frame: kind });
    this.#askedAt = undefined;
    const before = this.#state;
    if (frame.observabilityMode === true) {
      // Envoy does not wait for answers in observability mode, and a late answer would be
      // misread as one for a later frame; the guard only counts what it saw.
      if (!this.#observabilityCounted) metrics.anomalies.inc({ kind: "observability_mode" });
      this.#observabilityCounted = true;
      return;
    }
    const stopTimer = metrics.messageSeconds.labels({ frame: kind }).startTimer();
    try {
      await this.#dispatch(kind, frame);
    } catch (error) {
      metrics.anomalies.inc({ kind: "handler_error" });
      // The exchange's logger when there is one: its line carries the request and trace ids.
      (this.#run?.log ?? this.#deps.log).error(
        { err: error, frame: kind },
        "frame handler failed; answered with continue",
      );
      this.#answerFailed(kind, frame);
    } finally {
      stopTimer();
    }
    if (this.#state !== before && AWAITING_ENVOY.has(this.#state) && !this.#closed) {
      this.#askedAt = this.#deps.now();
      this.#askedEnvoy = true;
    }
  }

  /**
   * Once per stream that asked Envoy for more: every asked-for phase came, or Envoy closed at once
   * without one. A client that gave up waiting for the upstream (a later close) says neither.
   */
  #tellOverrideWatch(error: unknown): void {
    const watch = this.#deps.overrideWatch;
    if (this.#askedAt === undefined) {
      if (this.#askedEnvoy) watch?.asked(true);
      return;
    }
    if (error !== undefined) return;
    this.#deps.metrics.anomalies.inc({ kind: "asked_frame_missing" });
    if (this.#deps.now() - this.#askedAt <= QUICK_CLOSE_MS) watch?.asked(false);
  }

  /**
   * The neutral answer to a frame whose handling failed. A streamed body chunk must be answered with
   * its bytes (Envoy rejects a plain CONTINUE in full duplex as a spurious message and resets the
   * response); the chunk goes on unchecked, as a failed stage's input does.
   */
  #answerFailed(kind: FrameKind, frame: ProcessingRequest): void {
    if (kind !== "responseBody" || this.#state !== "response_stream") {
      this.#emit(continueFor(kind));
      return;
    }
    const endOfStream = frame.responseBody?.endOfStream === true;
    this.#emit(streamedBody(frame.responseBody?.body ?? new Uint8Array(), endOfStream));
    if (endOfStream) this.#complete(true);
  }

  /**
   * A frame with no phase the guard knows (empty, or one a newer Envoy added). Answered with a
   * continue for the phase the stream is waiting on, so an Envoy that waits for an answer gets one
   * before its message_timeout; the state stays as it was. A streamed response and a finished
   * exchange wait for no answer, and an unasked one would be a spurious message to Envoy.
   */
  #answerUnknown(): void {
    const awaited = AWAITED_FRAME[this.#state];
    if (awaited !== undefined) this.#emit(continueFor(awaited));
  }

  /** The stream ended (Envoy closed it, cancelled it, or the transport broke). */
  close(error?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    const { metrics } = this.#deps;
    metrics.activeStreams.dec();
    const unfinished = this.#state !== "done" && this.#state !== "request_headers";
    if (error !== undefined) metrics.streams.inc({ outcome: "error" });
    else metrics.streams.inc({ outcome: unfinished ? "cancelled" : "completed" });
    if (unfinished) metrics.anomalies.inc({ kind: "cancelled_mid_request" });
    this.#tellOverrideWatch(error);
    this.#finish({
      answeredBy: "unknown",
      cancelled: unfinished,
      ...(this.#responseStatus === undefined ? {} : { status: this.#responseStatus }),
      ...(this.#upstreamLatencyMs === undefined ? {} : { upstreamLatencyMs: this.#upstreamLatencyMs }),
      ...(this.#state === "response_stream" ? { streamed: true } : {}),
    });
  }

  async #dispatch(kind: FrameKind, frame: ProcessingRequest): Promise<void> {
    switch (kind) {
      case "requestHeaders":
        return this.#onRequestHeaders(frame);
      case "requestBody":
        return this.#onBody("request", frame.requestBody);
      case "responseHeaders":
        return this.#onResponseHeaders(frame);
      case "responseBody":
        if (this.#state === "response_stream") return this.#onStreamChunk(frame.responseBody);
        return this.#onBody("response", frame.responseBody);
      case "responseTrailers":
        if (this.#state === "response_stream") return this.#onStreamTrailers();
        this.#emit(continueFor(kind));
        return;
      case "requestTrailers":
        // Trailers are never requested; if an operator's processing_mode sends them, let them pass.
        this.#emit(continueFor(kind));
        return;
    }
  }

  async #onRequestHeaders(frame: ProcessingRequest): Promise<void> {
    if (this.#state !== "request_headers") {
      this.#anomaly("unexpected_order");
      this.#emit(continueFor("requestHeaders"));
      return;
    }
    const headers = decodeHeaders(frame.requestHeaders);
    const endOfStream = frame.requestHeaders?.endOfStream === true;
    const attributes = decodeAttributes(frame.attributes);
    const request = {
      method: headers.get(":method") ?? "GET",
      path: headers.get(":path") ?? "/",
      authority: headers.get(":authority") ?? "",
      headers,
      requestId: headers.get("x-request-id") ?? randomUUID(),
      endOfStream,
      ...(attributes === undefined ? {} : { attributes }),
      ...(this.#callTrace === undefined ? {} : { callTrace: this.#callTrace }),
    };
    const run = this.#deps.pipeline().open(request, (ms) => this.#extendDeadline(ms));
    if (run === undefined) {
      this.#emit({ requestHeaders: { response: { status: "CONTINUE" } }, modeOverride: PASS_THROUGH_MODE });
      this.#done();
      return;
    }
    this.#run = run;
    const result = await run.requestHeaders();
    if (this.#replied(result)) return;
    const bodyFollows = run.needs.requestBody && !endOfStream;
    const limit = this.#deps.requestBufferLimitBytes?.();
    if (
      bodyFollows &&
      limit !== undefined &&
      Number(headers.get("content-length") ?? 0) > limit &&
      this.#replied(tooLargeReply(limit, request.path))
    )
      return;
    this.#emit({
      requestHeaders: { response: commonResponse(result.edits, true) },
      modeOverride: this.#mode(),
      ...this.#metadata(result.edits),
    });
    if (bodyFollows) this.#state = "request_body";
    else this.#releaseRequest();
  }

  async #onResponseHeaders(frame: ProcessingRequest): Promise<void> {
    const run = this.#run;
    // Response headers may legitimately arrive while a request body is awaited: Envoy answered
    // locally (no route, upstream reset) before the body was sent.
    if (run === undefined || (this.#state !== "response_headers" && this.#state !== "request_body")) {
      this.#anomaly("unexpected_order");
      this.#emit(continueFor("responseHeaders"));
      return;
    }
    if (this.#releasedAt !== undefined) this.#upstreamLatencyMs = this.#deps.now() - this.#releasedAt;
    const headers = decodeHeaders(frame.responseHeaders);
    const status = Number.parseInt(headers.get(":status") ?? "", 10);
    this.#responseStatus = Number.isFinite(status) ? status : undefined;
    const endOfStream = frame.responseHeaders?.endOfStream === true;
    const result = await run.responseHeaders({ status: this.#responseStatus ?? 0, headers, endOfStream });
    if (this.#replied(result)) return;
    const body = endOfStream ? "none" : result.body;
    this.#emit({
      responseHeaders: { response: commonResponse(result.edits, false) },
      ...(body === "none" ? {} : { modeOverride: this.#responseMode(body) }),
      ...this.#metadata(result.edits),
    });
    this.#bodyChunks = [];
    this.#bodyBytes = 0;
    if (body === "whole") this.#state = "response_body";
    else if (body === "stream") this.#state = "response_stream";
    else if (!endOfStream && responseStream(headers, run.exchange) !== undefined)
      this.#complete(false, "until_envoy_closes");
    else this.#complete();
  }

  /** A chunk of a streamed response (FULL_DUPLEX_STREAMED): through the stages, then on to the client. */
  async #onStreamChunk(body: WireHttpBody | undefined): Promise<void> {
    const run = this.#run as ExchangeRun;
    const endOfStream = body?.endOfStream === true;
    const step = await run.responseChunk(body?.body ?? new Uint8Array(), endOfStream);
    if (step.type === "cut") {
      this.#emit(streamedBody(step.bytes, true));
      this.#finish({
        answeredBy: "guard",
        status: this.#responseStatus ?? 200,
        reason: step.reason,
        cancelled: false,
        streamed: true,
        ...(this.#upstreamLatencyMs === undefined ? {} : { upstreamLatencyMs: this.#upstreamLatencyMs }),
      });
      this.#done();
      return;
    }
    // Full duplex answers many chunks with one: nothing to send while every byte is held back.
    if (step.bytes.length > 0 || endOfStream) this.#emit(streamedBody(step.bytes, endOfStream));
    if (endOfStream) this.#complete(true);
  }

  /**
   * Trailers end a streamed response whose last chunk did not: whatever the stages still hold goes
   * out before the trailers are answered. A cut this late can only append its bytes: the response
   * ends with the trailers either way.
   */
  async #onStreamTrailers(): Promise<void> {
    const run = this.#run as ExchangeRun;
    const step = await run.responseChunk(new Uint8Array(), true);
    if (step.bytes.length > 0) this.#emit(streamedBody(step.bytes, false));
    this.#emit(trailersResponse(run.responseTrailers()));
    if (step.type === "forward") {
      this.#complete(true);
      return;
    }
    this.#finish({
      answeredBy: "guard",
      status: this.#responseStatus ?? 200,
      reason: step.reason,
      cancelled: false,
      streamed: true,
    });
    this.#done();
  }

  async #onBody(direction: "request" | "response", body: WireHttpBody | undefined): Promise<void> {
    const kind = direction === "request" ? "requestBody" : "responseBody";
    const run = this.#run;
    if (run === undefined || this.#state !== (direction === "request" ? "request_body" : "response_body")) {
      // A body after its phase ended: most often Envoy's duplicate end-of-stream chunk (envoy#46237).
      this.#anomaly(body?.endOfStream === true ? "duplicate_body" : "unexpected_order");
      this.#emit(continueFor(kind));
      return;
    }
    const chunk = body?.body ?? new Uint8Array();
    if (body?.endOfStream !== true) {
      // Only STREAMED/BUFFERED_PARTIAL modes (set by an operator, not by the guard) split bodies;
      // each chunk must be answered before Envoy forwards it, so keep a bounded copy and let it go.
      this.#anomaly("streamed_body");
      if (this.#bodyBytes + chunk.length <= (this.#deps.maxStreamedBodyBytes ?? 8 * 1024 * 1024))
        this.#bodyChunks.push(chunk);
      this.#bodyBytes += chunk.length;
      this.#emit(continueFor(kind));
      return;
    }
    this.#bodyChunks.push(chunk);
    const whole = concat(this.#bodyChunks);
    this.#bodyChunks = [];
    this.#bodyBytes = 0;
    const result = direction === "request" ? await run.requestBody(whole) : await run.responseBody(whole);
    if (this.#replied(result)) return;
    this.#emit({
      [kind]: { response: commonResponse(result.edits, direction === "request") },
      ...this.#metadata(result.edits),
    });
    if (direction === "request") this.#releaseRequest();
    else this.#complete();
  }

  #releaseRequest(): void {
    this.#releasedAt = this.#deps.now();
    const needs = this.#run?.needs;
    if (needs !== undefined && (needs.responseHeaders || needs.responseBody)) this.#state = "response_headers";
    else this.#complete();
  }

  // The outcome is recorded before #done: onDone may close the stream at once, and close() records
  // "unknown" for anything not yet recorded.
  /**
   * until_envoy_closes: a streamed answer goes on without the guard, for seconds. Ending the call
   * now would leave Envoy to reset it when the answer ends (measured: one RST_STREAM per stream,
   * and Node's rapid-reset limit then closes the connection); Envoy closes it gracefully itself.
   */
  #complete(streamed = false, end: "now" | "until_envoy_closes" = "now"): void {
    const released = this.#releasedAt;
    this.#finish({
      answeredBy: this.#responseStatus === undefined ? "unknown" : "upstream",
      cancelled: false,
      ...(streamed ? { streamed } : {}),
      ...(streamed && released !== undefined ? { generationMs: this.#deps.now() - released } : {}),
      ...(this.#responseStatus === undefined ? {} : { status: this.#responseStatus }),
      ...(this.#upstreamLatencyMs === undefined ? {} : { upstreamLatencyMs: this.#upstreamLatencyMs }),
    });
    if (end === "now") this.#done();
    else this.#state = "done";
  }

  #replied(result: PhaseResult): result is Extract<PhaseResult, { type: "reply" }> {
    if (result.type !== "reply") return false;
    this.#emit(immediateResponse(result.reply));
    this.#finish({
      answeredBy: "guard",
      status: result.reply.status,
      reason: result.reply.reason,
      cancelled: false,
      ...(this.#upstreamLatencyMs === undefined ? {} : { upstreamLatencyMs: this.#upstreamLatencyMs }),
    });
    this.#done();
    return true;
  }

  #finish(outcome: Outcome): void {
    this.#run?.end(outcome);
  }

  #done(): void {
    this.#state = "done";
    if (!this.#closed) this.#onDone?.();
  }

  /**
   * The mode asked for at the request headers. The response body is never asked for here, even by
   * a stage that will want it: the response headers decide (#responseMode), so that an Envoy that
   * drops the override shows as a body that never comes (overrideWatch) rather than as a buffered
   * body whose streamed answers Envoy would silently ignore.
   */
  #mode(): WireProcessingMode {
    const needs = this.#run?.needs;
    const wantsResponse = needs !== undefined && (needs.responseHeaders || needs.responseBody);
    return {
      ...PASS_THROUGH_MODE,
      responseHeaderMode: wantsResponse ? "SEND" : "SKIP",
      requestBodyMode: needs?.requestBody === true ? "BUFFERED" : "NONE",
    };
  }

  /**
   * The mode for the body of this response, sent with the response headers' answer. A streamed
   * body is FULL_DUPLEX_STREAMED, the one mode in which the guard can hold bytes back, release them
   * later and end the response early with the upstream reset (STREAMED can do neither); Envoy then
   * needs the trailers sent as well.
   */
  #responseMode(body: ResponseBodyNeed): WireProcessingMode {
    const stream = body === "stream";
    return {
      ...this.#mode(),
      responseHeaderMode: "SEND",
      responseBodyMode: stream ? "FULL_DUPLEX_STREAMED" : body === "whole" ? "BUFFERED" : "NONE",
      responseTrailerMode: stream ? "SEND" : "SKIP",
    };
  }

  #metadata(edits: MergedEdits): Pick<ProcessingResponse, "dynamicMetadata"> {
    if (Object.keys(edits.metadata).length === 0) return {};
    return { dynamicMetadata: toWireStruct({ [METADATA_NAMESPACE]: edits.metadata }) };
  }

  #extendDeadline(requestedMs: number): void {
    if (this.#closed || !(requestedMs > 0)) return;
    const ms = Math.max(requestedMs, this.#deps.messageTimeoutMs?.() ?? 0);
    const seconds = Math.floor(ms / 1000);
    this.#emit({ overrideMessageTimeout: { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) } });
  }

  #anomaly(kind: string): void {
    this.#deps.metrics.anomalies.inc({ kind });
  }

  #emit(frame: ProcessingResponse): void {
    if (this.#closed) return;
    this.#send(frame);
  }
}
