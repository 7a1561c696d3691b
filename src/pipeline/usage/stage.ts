// The usage stage: counts the tokens upstreams report in their answers and times streamed answers
// as the client gets them (time to first token, time per output token), per route.
//
// Tokens come from what the upstream reported (`usage` of a stream's event, or of a JSON body).
// A stream that completes without usage (llama.cpp's server never sends one, nor does any OpenAI
// server unless the client set stream_options.include_usage) is counted as such
// (guard_stream_usage_missing_total), and its tokens are still counted, labelled by where they came
// from: completion tokens as its output events (exact on servers that send one token per event, a
// floor on those that batch), prompt tokens as the complexity stage estimated them. A streamed answer goes through the stage
// chunk by chunk (it asks for "stream" at a 2xx stream: text/event-stream, or NDJSON on a route that
// declares it) and is forwarded unchanged; the stage reads each event with the streams library (the
// framer of the stream's framing, StreamAssembler) keeping no assembled text. An event beyond the
// framer's 1 MiB cap is skipped, not held (counted in guard_usage_events_skipped_total): metering
// goes on with the next event, and the bytes pass unchanged whatever the framer makes of them. A
// non-streamed body is read only when Envoy buffers it anyway (another stage needed it whole),
// unless the route sets countBodies.
//
// Where it sits in the line-up (build.ts): outside every stage that can hold back, cut or replace
// a response, so it sees the bytes the client gets, when the client gets them.
import { BoundedLabel } from "../../metrics/labels.js";
import { StreamAssembler, type TokenUsage } from "../../streams/formats.js";
import type { EventFramer } from "../../streams/framer.js";
import { newFramer } from "../../streams/framing.js";
import { isObject, tokenUsage } from "../../streams/reading.js";
import { parseJsonBody } from "../json-body.js";
import { type ResponseStream, responseStream } from "../response-shape.js";
import {
  type ChunkStep,
  CONTINUE,
  type Exchange,
  type Outcome,
  type ResponseInfo,
  type Stage,
  type StageConfig,
  type StageDeps,
  type StageRun,
  type Step,
} from "../types.js";
import type { RouteUsageConfig, UsageConfig } from "./config.js";
import { createUsageMetrics, type StreamOutcome, type UsageMetrics } from "./metrics.js";

const NO_BODY: Step = Object.freeze({ type: "continue", responseBody: "none" });
const WHOLE_BODY: Step = Object.freeze({ type: "continue", responseBody: "whole" });
const STREAMED_BODY: Step = Object.freeze({ type: "continue", responseBody: "stream" });
const RESPONSE_HEADERS: Step = Object.freeze({ type: "continue", needs: Object.freeze({ responseHeaders: true }) });

/** What every run of the stage shares. */
interface Shared {
  readonly metrics: UsageMetrics;
  readonly versions: BoundedLabel;
  readonly now: () => number;
}

export function createUsageStage(config: StageConfig<UsageConfig, RouteUsageConfig>, deps: StageDeps): Stage {
  const shared: Shared = {
    metrics: createUsageMetrics(deps.registry),
    versions: new BoundedLabel(config.section.maxModelVersions),
    now: deps.now,
  };
  return {
    name: "usage",
    start(exchange) {
      const settings = config.routes.get(exchange.route.name);
      if (settings?.enabled !== true) return undefined;
      return new UsageRun(exchange, settings, shared);
    },
  };
}

/** One streamed answer being read: its events, and when output passed. */
class StreamWatch {
  /** Skips an oversized event rather than stopping: a metering gap, never a stream left unread. */
  readonly framer: EventFramer;
  /** Keeps no text (maxDocumentBytes 0): the stage needs each event's reading, never the document. */
  readonly assembler: StreamAssembler;
  /** Oversized events already counted. */
  skipped = 0;
  /** Monotonic ms when the first and the latest chunk with model output passed. */
  firstOutputAt: number | undefined;
  lastOutputAt = 0;
  /** Chunks that carried model output. */
  outputChunks = 0;
  ended = false;

  constructor(stream: ResponseStream) {
    this.framer = newFramer(stream.framing, { overflow: "skip" });
    this.assembler = new StreamAssembler(stream.format, { maxDocumentBytes: 0 });
  }
}

function isIdentity(contentEncoding: string | undefined): boolean {
  if (contentEncoding === undefined) return true;
  const coding = contentEncoding.trim().toLowerCase();
  return coding === "" || coding === "identity";
}

function mayBeJson(contentType: string | undefined): boolean {
  return contentType === undefined || contentType.toLowerCase().includes("json");
}

class UsageRun implements StageRun {
  readonly #route: string;
  #rawVersion: string | undefined;
  /** A streamed 2xx answer: read chunk by chunk (or whole, when another stage buffered it). */
  #stream: StreamWatch | undefined;
  /** A non-streamed 2xx answer whose body may carry usage, if the body comes by. */
  #bodyReadable = false;
  #bodyUsage: TokenUsage | undefined;

  constructor(
    private readonly exchange: Exchange,
    private readonly settings: RouteUsageConfig,
    private readonly shared: Shared,
  ) {
    this.#route = exchange.route.name;
  }

  onRequestHeaders(): Step {
    return RESPONSE_HEADERS;
  }

  onResponseHeaders(response: ResponseInfo): Step {
    if (response.status < 200 || response.status > 299 || response.endOfStream) return NO_BODY;
    const { headers } = response;
    // A compressed body cannot be read without decompressing it: not worth it for a count.
    if (!isIdentity(headers.get("content-encoding"))) return NO_BODY;
    this.#rawVersion = headers.get(this.settings.modelVersionHeader);
    const stream = responseStream(headers, this.exchange);
    if (stream !== undefined) {
      this.#stream = new StreamWatch(stream);
      return STREAMED_BODY;
    }
    this.#bodyReadable = mayBeJson(headers.get("content-type"));
    return this.#bodyReadable && this.settings.countBodies ? WHOLE_BODY : NO_BODY;
  }

  onResponseChunk(chunk: Uint8Array, endOfStream: boolean): ChunkStep {
    if (this.#stream !== undefined) this.#read(this.#stream, chunk, endOfStream);
    return { type: "forward", bytes: chunk };
  }

  onResponseBody(body: Uint8Array): Step {
    // A stream another stage had Envoy buffer: read as one chunk, the moment all of it passes.
    if (this.#stream !== undefined) this.#read(this.#stream, body, true);
    else if (this.#bodyReadable && body.byteLength <= this.settings.maxBodyBytes) {
      const value = parseJsonBody(body);
      const usage = isObject(value) ? tokenUsage(value.usage) : undefined;
      if (usage !== undefined) {
        this.#bodyUsage = usage;
        this.#reportCompletion(usage);
      }
    }
    return CONTINUE;
  }

  onEnd(outcome: Outcome): void {
    const watch = this.#stream;
    if (watch !== undefined) {
      this.#endStream(watch, outcome);
      return;
    }
    // A body the guard replaced never reached the client: its usage is not counted.
    if (this.#bodyUsage !== undefined && outcome.answeredBy !== "guard") this.#countTokens(this.#bodyUsage);
  }

  #read(watch: StreamWatch, chunk: Uint8Array, endOfStream: boolean): void {
    if (watch.ended) return;
    watch.ended = endOfStream;
    const events = watch.framer.push(chunk);
    if (endOfStream) events.push(...watch.framer.end());
    if (watch.framer.skipped > watch.skipped) {
      this.shared.metrics.eventsSkipped.inc({ route: this.#route }, watch.framer.skipped - watch.skipped);
      watch.skipped = watch.framer.skipped;
    }
    let output = false;
    for (const event of events) {
      const reading = watch.assembler.read(event);
      if (reading.content) output = true;
      if (reading.usage !== undefined) this.#reportCompletion(reading.usage);
    }
    if (!output) return;
    const now = this.shared.now();
    if (watch.firstOutputAt === undefined) {
      watch.firstOutputAt = now;
      this.shared.metrics.timeToFirstToken.observe(this.#tierLabels(), (now - this.exchange.startedAt) / 1000);
    }
    watch.lastOutputAt = now;
    watch.outputChunks++;
  }

  #endStream(watch: StreamWatch, outcome: Outcome): void {
    const { metrics } = this.shared;
    const ended: StreamOutcome = outcome.cancelled ? "cancelled" : outcome.answeredBy === "guard" ? "cut" : "completed";
    metrics.streams.inc({ route: this.#route, outcome: ended });
    const usage = watch.assembler.usage;
    if (usage !== undefined) this.#countTokens(usage);
    else if (ended === "completed") {
      metrics.usageMissing.inc({ route: this.#route });
      this.#countUnreported(watch.assembler.contentEvents);
    }
    // Output that all came in one chunk says nothing about the time between tokens.
    if (watch.firstOutputAt === undefined || watch.outputChunks < 2) return;
    const tokens = usage?.completionTokens ?? watch.assembler.contentEvents;
    if (tokens < 2) return;
    metrics.timePerOutputToken.observe(
      this.#tierLabels(),
      (watch.lastOutputAt - watch.firstOutputAt) / 1000 / (tokens - 1),
    );
  }

  #reportCompletion(usage: TokenUsage): void {
    if (usage.completionTokens !== undefined) this.exchange.completionTokens = usage.completionTokens;
    if (usage.promptTokens !== undefined) this.exchange.inputTokens = usage.promptTokens;
  }

  #countTokens(usage: TokenUsage): void {
    const labels = this.#tokenLabels();
    const { tokens } = this.shared.metrics;
    // A zero is still counted: it creates the series, so the route's rate reads 0 rather than absent.
    if (usage.promptTokens !== undefined)
      tokens.inc({ ...labels, kind: "prompt", source: "reported" }, usage.promptTokens);
    if (usage.completionTokens !== undefined)
      tokens.inc({ ...labels, kind: "completion", source: "reported" }, usage.completionTokens);
  }

  /** A completed stream that reported no usage: its output events, and the prompt as priced. */
  #countUnreported(outputEvents: number): void {
    const labels = this.#tokenLabels();
    const { tokens } = this.shared.metrics;
    tokens.inc({ ...labels, kind: "completion", source: "deltas" }, outputEvents);
    const prompt = this.exchange.promptTokens;
    if (prompt !== undefined) tokens.inc({ ...labels, kind: "prompt", source: "estimate" }, prompt);
  }

  #tokenLabels(): { route: string; model_version: string } {
    return {
      route: this.#route,
      model_version: this.exchange.modelVersion ?? this.shared.versions.value(this.#rawVersion),
    };
  }

  #tierLabels(): { route: string; tier: string } {
    return { route: this.#route, tier: this.exchange.tier ?? "none" };
  }
}
