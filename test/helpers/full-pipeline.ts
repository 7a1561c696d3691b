// The guard's real pipeline built from config/default.yaml (every capability on, the example
// contracts compiled), and one HTTP exchange driven through a StreamProcessor the way Envoy
// drives it: each phase is sent only if the guard asked for it.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { parse, stringify } from "yaml";
import { prepareText } from "../../src/config/prepare.js";
import { StreamProcessor } from "../../src/extproc/stream.js";
import type { ProcessingRequest, ProcessingResponse } from "../../src/extproc/wire.js";
import { ComponentLogs } from "../../src/log.js";
import { type CoreMetrics, createCoreMetrics } from "../../src/metrics/registry.js";
import { buildPipeline } from "../../src/pipeline/build.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const encoder = new TextEncoder();

export interface FullPipeline {
  readonly metrics: CoreMetrics;
  readonly processor: (send: (frame: ProcessingResponse) => void) => StreamProcessor;
}

export interface ExchangeSpec {
  readonly method: string;
  readonly path: string;
  readonly requestHeaders: Readonly<Record<string, string | undefined>>;
  readonly body: Uint8Array;
  readonly status: number;
  readonly responseHeaders: Readonly<Record<string, string | undefined>>;
  readonly responseBody: Uint8Array;
}

export async function fullPipeline(): Promise<FullPipeline> {
  const config = parse(await readFile(`${ROOT}config/default.yaml`, "utf8")) as Record<string, unknown>;
  // Absolute proto path (tests do not run from the root), and a small cache so "bounded" is visible.
  const text = stringify({
    ...config,
    contracts: { protoPaths: [`${ROOT}proto/contracts`] },
    cache: { maxBytes: 1_048_576 },
  });
  const prepared = await prepareText(text);
  if (!prepared.ok) throw new Error(`default config: ${JSON.stringify(prepared.errors)}`);
  const metrics = createCoreMetrics("fuzz");
  const log = pino({ level: "silent" });
  let clock = 0;
  const now = (): number => (clock += 1);
  const built = buildPipeline(
    prepared.config,
    { metrics, registry: metrics.registry, logs: new ComponentLogs(log), now },
    prepared.contracts,
  );
  await Promise.all(built.pipeline.stages.map((stage) => stage.warmUp?.()));
  return {
    metrics,
    processor: (send) =>
      new StreamProcessor(
        { pipeline: () => built.pipeline, metrics, log, now, requestBufferLimitBytes: () => 8 * 1024 * 1024 },
        send,
      ),
  };
}

function wireHeaders(headers: Record<string, string | undefined>): {
  headers: { key: string; rawValue: Uint8Array }[];
} {
  return {
    headers: Object.entries(headers).flatMap(([key, value]) =>
      value === undefined ? [] : [{ key, rawValue: encoder.encode(value) }],
    ),
  };
}

function answers(kind: string, out: readonly ProcessingResponse[]): ProcessingResponse | undefined {
  return out.find(
    (frame) => frame.immediateResponse !== undefined || (frame as Record<string, unknown>)[kind] !== undefined,
  );
}

/** Runs one exchange the way Envoy would; returns a problem description or undefined. */
export async function exchange(make: FullPipeline["processor"], spec: ExchangeSpec): Promise<string | undefined> {
  const out: ProcessingResponse[] = [];
  const processor = make((frame) => out.push(frame));
  try {
    const step = async (frame: ProcessingRequest, kind: string): Promise<ProcessingResponse | string> => {
      out.length = 0;
      await processor.handle(frame);
      const answer = answers(kind, out);
      if (answer === undefined) return `no answer to ${kind}`;
      const immediate = answer.immediateResponse;
      if (immediate !== undefined) {
        if (immediate.status.code < 100 || immediate.status.code > 599) return `bad status ${immediate.status.code}`;
        if (!(immediate.headers?.setHeaders ?? []).some((option) => option.header.key === "x-guard-reason"))
          return "reply without x-guard-reason";
      }
      return answer;
    };
    const hasBody = spec.body.length > 0;
    const headersAnswer = await step(
      {
        request: "requestHeaders",
        requestHeaders: {
          headers: wireHeaders({
            ":method": spec.method,
            ":path": spec.path,
            ":authority": "fuzz",
            "content-type": "application/json",
            "content-length": hasBody ? String(spec.body.length) : undefined,
            ...spec.requestHeaders,
          }),
          endOfStream: !hasBody,
        },
      },
      "requestHeaders",
    );
    if (typeof headersAnswer === "string") return headersAnswer;
    if (headersAnswer.immediateResponse !== undefined) return undefined;
    const mode = headersAnswer.modeOverride;
    if (hasBody && mode?.requestBodyMode === "BUFFERED") {
      const bodyAnswer = await step(
        { request: "requestBody", requestBody: { body: spec.body, endOfStream: true } },
        "requestBody",
      );
      if (typeof bodyAnswer === "string") return bodyAnswer;
      if (bodyAnswer.immediateResponse !== undefined) return undefined;
    }
    if (mode?.responseHeaderMode !== "SEND") return undefined;
    const responseAnswer = await step(
      {
        request: "responseHeaders",
        responseHeaders: {
          headers: wireHeaders({
            ":status": String(spec.status),
            "content-length": String(spec.responseBody.length),
            ...spec.responseHeaders,
          }),
          endOfStream: false,
        },
      },
      "responseHeaders",
    );
    if (typeof responseAnswer === "string") return responseAnswer;
    if (responseAnswer.immediateResponse !== undefined) return undefined;
    const bodyMode = responseAnswer.modeOverride?.responseBodyMode ?? mode.responseBodyMode;
    if (bodyMode !== "BUFFERED") return undefined;
    const last = await step(
      { request: "responseBody", responseBody: { body: spec.responseBody, endOfStream: true } },
      "responseBody",
    );
    return typeof last === "string" ? last : undefined;
  } finally {
    processor.close();
  }
}
