// A stage harness without Envoy: fake exchanges and the cache stage built on virtual time.
import { pino } from "pino";
import { Registry } from "prom-client";
import { configSchema, type GuardConfig } from "../../../../src/config/schema.js";
import { stageConfigs } from "../../../../src/pipeline/build.js";
import { type CacheStage, createCacheStage } from "../../../../src/pipeline/cache/stage.js";
import { tenantOf } from "../../../../src/pipeline/identity/identify.js";
import type { ChunkStep, Exchange, ResponseInfo, StageRun, Step } from "../../../../src/pipeline/types.js";
import { registrySum } from "../../../helpers/registry-metrics.js";
import { VirtualTime } from "../../../helpers/virtual-time.js";

export interface FakeExchange extends Exchange {
  readonly deadlineExtensions: number[];
}

export interface RequestSpec {
  readonly route?: string;
  readonly method?: string;
  readonly path?: string;
  readonly headers?: Record<string, string>;
  /** JSON-encoded unless a string; undefined = no body (headers end the stream). */
  readonly body?: unknown;
  /** The complexity tier (the pool the request goes to), as the complexity stage sets it. */
  readonly tier?: string;
}

export function fakeExchange(spec: RequestSpec, startedAt = 0): FakeExchange {
  const deadlineExtensions: number[] = [];
  const request = {
    method: spec.method ?? "POST",
    path: spec.path ?? "/v1/chat/completions",
    authority: "model.local",
    headers: new Map(Object.entries({ authorization: "Bearer tenant-a", ...spec.headers })),
    requestId: "req-1",
    endOfStream: spec.body === undefined,
  };
  return {
    request,
    route: { name: spec.route ?? "chat" },
    ...(spec.tier === undefined ? {} : { tier: spec.tier }),
    startedAt,
    // As the pipeline derives it with the default identity section: the hashed authorization.
    tenant: tenantOf(request, { header: "authorization" }),
    priority: "standard",
    deadlineExtensions,
    extendDeadline: (ms) => deadlineExtensions.push(ms),
  };
}

export function bodyBytes(body: unknown): Uint8Array {
  if (body instanceof Uint8Array) return body;
  return new Uint8Array(Buffer.from(typeof body === "string" ? body : JSON.stringify(body), "utf8"));
}

export function response(status: number, headers: Record<string, string> = {}, endOfStream = false): ResponseInfo {
  return { status, headers: new Map(Object.entries({ "content-type": "application/json", ...headers })), endOfStream };
}

export interface Harness {
  readonly stage: CacheStage;
  readonly time: VirtualTime;
  readonly registry: Registry;
  readonly config: GuardConfig;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

export function harness(raw: unknown, time = new VirtualTime()): Harness {
  const config = configSchema.parse(raw);
  const registry = new Registry();
  const stage = createCacheStage(stageConfigs(config).cache, {
    registry,
    log: pino({ level: "silent" }),
    now: time.now,
    timers: time.timers,
  });
  return {
    stage,
    time,
    registry,
    config,
    metric: (name, labels = {}) => registrySum(registry, name, labels),
  };
}

/** Runs the request phase: headers, then the body when the stage asked for it. */
export async function requestPhase(run: StageRun, exchange: Exchange, body: unknown): Promise<Step> {
  const step = await run.onRequestHeaders!();
  if (step.type === "reply" || exchange.request.endOfStream || step.needs?.requestBody !== true) return step;
  return run.onRequestBody!(bodyBytes(body));
}

/** Runs the response phase the way the pipeline does after the upstream answered. */
export async function responsePhase(
  run: StageRun,
  exchange: Exchange,
  info: ResponseInfo,
  body: unknown,
): Promise<Step[]> {
  exchange.response = info;
  const steps = [await run.onResponseHeaders!(info)];
  if (!info.endOfStream) steps.push(await run.onResponseBody!(bodyBytes(body)));
  return steps;
}

/** An event stream's frames as the demo model and OpenAI send them, closed by `data: [DONE]`. */
export function sseEvents(pieces: readonly string[], done = true): string[] {
  const events = pieces.map(
    (content, index) =>
      `data: ${JSON.stringify({ id: "chatcmpl-1", object: "chat.completion.chunk", choices: [{ index: 0, delta: { content }, finish_reason: index === pieces.length - 1 ? "stop" : null }] })}\n\n`,
  );
  return done ? [...events, "data: [DONE]\n\n"] : events;
}

export const SSE_RESPONSE_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache" } as const;

export interface StreamedResponse {
  readonly headers: Step;
  /** Each chunk the stage was given, and its answer. */
  readonly chunks: { readonly sent: Uint8Array; readonly step: ChunkStep }[];
}

/**
 * Runs the response phase of a streamed answer the way the pipeline does when the stages' need
 * was "stream": headers, then each chunk through onResponseChunk; endOfStream marks the last one
 * (false: the stream stops short, as when the client leaves or a stage inside cuts it). When the
 * stage did not ask for the stream, no chunk reaches it.
 */
export async function streamPhase(
  run: StageRun,
  exchange: Exchange,
  info: ResponseInfo,
  chunks: readonly (string | Uint8Array)[],
  endOfStream = true,
): Promise<StreamedResponse> {
  exchange.response = info;
  const headers = await run.onResponseHeaders!(info);
  const seen: { sent: Uint8Array; step: ChunkStep }[] = [];
  if (headers.type !== "continue" || headers.responseBody !== "stream") return { headers, chunks: seen };
  for (const [index, chunk] of chunks.entries()) {
    const sent = bodyBytes(chunk);
    const step = await run.onResponseChunk!(sent, endOfStream && index === chunks.length - 1);
    seen.push({ sent, step });
  }
  return { headers, chunks: seen };
}
