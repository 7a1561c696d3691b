// Builds ext_proc frames as Envoy 1.40 sends them (header values as raw bytes) and runs a
// StreamProcessor over them, so state-machine tests read as "frames in → frames out".
import { pino } from "pino";
import { configSchema, type RouteConfig } from "../../src/config/schema.js";
import { type StreamDeps, StreamProcessor } from "../../src/extproc/stream.js";
import type { ProcessingRequest, ProcessingResponse } from "../../src/extproc/wire.js";
import { type CoreMetrics, createCoreMetrics } from "../../src/metrics/registry.js";
import { Pipeline } from "../../src/pipeline/pipeline.js";
import type { Stage } from "../../src/pipeline/types.js";
import { registrySum } from "./registry-metrics.js";

const encoder = new TextEncoder();

function wireHeaders(headers: Record<string, string>): { headers: { key: string; rawValue: Uint8Array }[] } {
  return { headers: Object.entries(headers).map(([key, value]) => ({ key, rawValue: encoder.encode(value) })) };
}

export function requestHeaders(headers: Record<string, string>, endOfStream = false): ProcessingRequest {
  return {
    request: "requestHeaders",
    requestHeaders: {
      headers: wireHeaders({
        ":method": "POST",
        ":path": "/v1/chat/completions",
        ":authority": "guard.test",
        ...headers,
      }),
      endOfStream,
    },
  };
}

export function requestBody(body: string, endOfStream = true): ProcessingRequest {
  return { request: "requestBody", requestBody: { body: encoder.encode(body), endOfStream } };
}

export function responseHeaders(
  status: number,
  headers: Record<string, string> = {},
  endOfStream = false,
): ProcessingRequest {
  return {
    request: "responseHeaders",
    responseHeaders: { headers: wireHeaders({ ":status": String(status), ...headers }), endOfStream },
  };
}

export function responseBody(body: string, endOfStream = true): ProcessingRequest {
  return { request: "responseBody", responseBody: { body: encoder.encode(body), endOfStream } };
}

/** A route with every capability's defaults, as the config loader would produce it. */
export function route(name: string, pathPrefix = "/"): RouteConfig {
  const parsed = configSchema.parse({ routes: [{ name, match: { pathPrefix } }] }).routes[0];
  if (parsed === undefined) throw new Error("route did not parse");
  return parsed;
}

export interface Harness {
  readonly metrics: CoreMetrics;
  readonly sent: ProcessingResponse[];
  readonly processor: StreamProcessor;
  /** Feeds frames in order and returns what the processor sent for them. */
  feed(...frames: ProcessingRequest[]): Promise<ProcessingResponse[]>;
}

export function harness(
  stages: Stage[],
  routes: RouteConfig[] = [route("test")],
  metrics = createCoreMetrics("test"),
  deps: Pick<StreamDeps, "overrideWatch"> = {},
): Harness {
  const log = pino({ level: "silent" });
  let clock = 0;
  const now = (): number => (clock += 5);
  const pipeline = new Pipeline(routes, stages, { metrics, log, now });
  const sent: ProcessingResponse[] = [];
  const processor = new StreamProcessor({ pipeline: () => pipeline, metrics, log, now, ...deps }, (frame) =>
    sent.push(frame),
  );
  return {
    metrics,
    sent,
    processor,
    async feed(...frames) {
      const before = sent.length;
      for (const frame of frames) await processor.handle(frame);
      return sent.slice(before);
    },
  };
}

export function headerValue(frame: { header: { key: string; rawValue: Uint8Array } }): string {
  return new TextDecoder().decode(frame.header.rawValue);
}

/** Set-header mutations of a frame's phase answer (trailers included), as a plain record. */
export function setHeadersOf(frame: ProcessingResponse | undefined): Record<string, string> {
  const common =
    frame?.requestHeaders?.response ??
    frame?.requestBody?.response ??
    frame?.responseHeaders?.response ??
    frame?.responseBody?.response;
  const mutation = common?.headerMutation ?? frame?.responseTrailers?.headerMutation;
  return Object.fromEntries((mutation?.setHeaders ?? []).map((option) => [option.header.key, headerValue(option)]));
}

/** A counter's total over the series matching `labels`; throws when the counter is not registered. */
export async function counterValue(
  metrics: CoreMetrics,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  return registrySum(metrics.registry, name, labels);
}
