// The demo model server behind `make run`, the end-to-end tests and the benchmarks: speaks the
// OpenAI (chat, completions, embeddings, responses), Ollama (/api/chat, NDJSON), predict and KServe v2 APIs with reproducible
// answers, simulates a batching accelerator's latency, streams answers paced like token decoding
// (firstTokenMs, interTokenMs), injects failures on demand, and exposes a /__demo control plane
// (never proxied in production) so tests can see what reached the upstream, including streams a
// client cut short, and switch model versions at runtime.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { BoundedLabel } from "../metrics/labels.js";
import type { JsonValue } from "../pipeline/types.js";
import { seededRandom } from "../util/seeded-random.js";
import { Batcher, type BatcherClock, realClock } from "./batcher.js";
import { sha256Hex } from "./determinism.js";
import { type Answer, answer, errorAnswer, type ModelRoute, matchModelRoute, requestedTokens } from "./endpoints.js";
import { jitteredEta } from "./outputs.js";
import { type BodyRead, flattenHeaders, parseJson, readBody, readOverrides } from "./request.js";
import { NO_PACING, type Pacing, PLAIN_WIRE, resetMidResponse, sendJson, sendStream } from "./send.js";
import {
  type ConfigureResult,
  type DemoOptions,
  type DemoSettings,
  demoOptionsSchema,
  demoPatchSchema,
  describeIssues,
} from "./settings.js";

export interface DemoStats {
  readonly pool: string;
  readonly version: string;
  readonly variant: string;
  /** Requests answered on the model endpoints (any status, resets included) since the last reset. */
  readonly served: number;
  /** Model requests whose client (or the guard) went away before the answer was ready. */
  readonly abandoned: number;
  readonly byPath: Readonly<Record<string, number>>;
  /** Status code → count; upstream resets injected by x-demo-reset count under "reset". */
  readonly byStatus: Readonly<Record<string, number>>;
  /** Model requests received and not yet answered, whether waiting for a slot or being served. */
  readonly inFlight: number;
  readonly maxInFlight: number;
  /** Requests occupying a batch slot now; never above capacity when capacity > 0. */
  readonly active: number;
  readonly maxActive: number;
  /** Requests queued for a batch slot. */
  readonly waiting: number;
  /** Streamed answers (SSE, NDJSON) written to the end, the closing `data: [DONE]`, response.completed or done line included. */
  readonly streamsCompleted: number;
  /**
   * Streamed answers whose client (or Envoy) went away mid-stream: the demo noticed the close,
   * stopped writing and dropped its timer. Only a paced stream can be cut short this way.
   */
  readonly streamsCancelled: number;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly bodyBytes: number;
  readonly bodySha256: string;
}

export interface ListeningAddress {
  readonly host: string;
  readonly port: number;
  readonly url: string;
}

export interface DemoModel {
  /** Port 0 picks a free port; the actual one is in the result. */
  listen(port?: number, host?: string): Promise<ListeningAddress>;
  /** Drops queued and in-service requests and open connections, then stops listening. */
  close(): Promise<void>;
  stats(): DemoStats;
  /** The last RECORDED_REQUESTS model-side requests (control plane excluded), oldest first. */
  requests(): readonly RecordedRequest[];
  /** Zeroes counters, forgets recorded requests and restarts the error generator from the seed. */
  reset(): void;
  /** Applies a partial update of the behaviour knobs; an invalid patch changes nothing. */
  configure(patch: unknown): ConfigureResult;
  settings(): DemoSettings;
}

export const RECORDED_REQUESTS = 200;
/** Distinct byPath keys kept; predict/infer paths carry caller-chosen names. */
const MAX_PATH_KEYS = 64;
/**
 * Envoy reuses upstream connections; Node's 5 s default idle timeout races with that reuse and
 * shows up as spurious upstream resets, so idle connections are kept longer than Envoy's pool does.
 */
const KEEP_ALIVE_TIMEOUT_MS = 75_000;
const CONTROL_PREFIX = "/__demo/";

export function createDemoModel(options: DemoOptions = {}, clock: BatcherClock = realClock): DemoModel {
  let settings: DemoSettings = demoOptionsSchema.parse(options);
  const batcher = new Batcher(settings, clock);
  let random = seededRandom(settings.seed);
  /** The eta jitter's draws, apart from the error draws so a jitter leaves a seeded run's errors as they were. */
  let jitter = seededRandom(settings.seed + 1);
  let responseCounter = 0;
  let served = 0;
  let abandoned = 0;
  let streamsCompleted = 0;
  let streamsCancelled = 0;
  let byPath: Record<string, number> = {};
  let byStatus: Record<string, number> = {};
  let pathLabel = new BoundedLabel(MAX_PATH_KEYS, 200);
  let inFlight = 0;
  let maxInFlight = 0;
  let recorded: RecordedRequest[] = [];
  /** Aborted by close(): paced streams drop their timers at once, not when their socket's close comes through. */
  const closing = new AbortController();

  const server = createServer({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, (req, res) => {
    handle(req, res).catch(() => {
      // Only a bug gets here; the process must survive it, and the client learns via a 500 or a reset.
      if (res.headersSent) res.destroy();
      else sendJson(res, 500, { error: { message: "demo model internal error", type: "internal" } }, {});
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const method = req.method ?? "GET";
    const read = await readBody(req, settings.maxBodyBytes);
    if (path.startsWith(CONTROL_PREFIX)) {
      handleControl(method, path, read, res);
      return;
    }
    const body = read.ok ? read.bytes : Buffer.alloc(0);
    const bodySha256 = sha256Hex(body);
    record({ method, path, headers: flattenHeaders(req), bodyBytes: body.length, bodySha256 });
    const route = matchModelRoute(path);
    if (route === undefined) {
      sendJson(res, 404, { error: { message: `no route for ${path}`, type: "not_found" } }, {});
      return;
    }
    if (method !== "POST") {
      sendJson(res, 405, { error: { message: "use POST", type: "method_not_allowed" } }, { allow: "POST" });
      return;
    }
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    // Drawn for every model request, so a seeded run fails the same requests whatever they ask for.
    const failureDraw = random();
    try {
      const status = await serveModel(req, res, read, bodySha256, failureDraw, route);
      if (status === "abandoned") {
        abandoned++;
        return;
      }
      served++;
      const key = pathLabel.value(path);
      byPath[key] = (byPath[key] ?? 0) + 1;
      byStatus[status] = (byStatus[status] ?? 0) + 1;
    } finally {
      inFlight--;
    }
  }

  /** Answers one model request; returns the status, "reset", or "abandoned" (client left first). */
  async function serveModel(
    req: IncomingMessage,
    res: ServerResponse,
    read: BodyRead,
    bodySha256: string,
    failureDraw: number,
    route: ModelRoute,
  ): Promise<string> {
    const overrides = readOverrides(req);
    const version = typeof overrides === "string" ? settings.version : (overrides.version ?? settings.version);
    const headers = { "x-model-version": version, "x-demo-pool": settings.pool, "x-demo-request-sha256": bodySha256 };
    const wire = typeof overrides === "string" ? PLAIN_WIRE : overrides.wire;
    /** Sends the answer; a stream is awaited to its end, so inFlight counts it until then. */
    const reply = async (result: Answer, pacing: Pacing = NO_PACING): Promise<string> => {
      if (result.kind === "json") {
        sendJson(res, result.status, result.body, headers, wire);
        return String(result.status);
      }
      const end = await sendStream(res, result, headers, pacing, {
        clock,
        stop: closing.signal,
        trailers: wire.trailers,
      });
      if (end === "completed") streamsCompleted++;
      else streamsCancelled++;
      return "200";
    };
    if (typeof overrides === "string") return reply(errorAnswer(400, overrides, "invalid_request_error"));
    if (!read.ok) {
      return reply(
        read.tooLarge
          ? errorAnswer(413, `request body exceeds ${settings.maxBodyBytes} bytes`, "invalid_request_error")
          : errorAnswer(400, "request body was cut off", "invalid_request_error"),
      );
    }
    const json = parseJson(read.bytes);
    if (json === undefined) return reply(errorAnswer(400, "request body is not valid JSON", "invalid_request_error"));
    const answered = answer(route, json, {
      variant: overrides.variant ?? settings.variant,
      version,
      task: overrides.task,
      fence: overrides.fence,
      responseId: `demo-${++responseCounter}`,
      createdSeconds: Math.floor(Date.now() / 1000),
    });
    const spread = settings.etaJitterMinutes;
    const result =
      spread > 0 && route.kind === "predict" && route.task === "eta" && answered.kind === "json"
        ? { ...answered, body: jitteredEta(answered.body, Math.round((jitter() * 2 - 1) * spread)) }
        : answered;

    const workMs =
      overrides.latencyMs ??
      settings.baseLatencyMs +
        (settings.perKbMs * read.bytes.length) / 1024 +
        settings.perTokenMs * requestedTokens(json);
    const clientGone = new AbortController();
    const onClose = (): void => clientGone.abort();
    res.once("close", onClose);
    // A client that left while its body was being read has already fired "close".
    if (req.socket.destroyed) clientGone.abort();
    const end = await batcher.run(workMs, clientGone.signal);
    res.off("close", onClose);
    if (end === "aborted") {
      res.destroy();
      return "abandoned";
    }

    if (overrides.reset) {
      resetMidResponse(res, result, headers);
      return "reset";
    }
    if (overrides.status !== undefined) {
      return reply(errorAnswer(overrides.status, `status ${overrides.status} forced by x-demo-status`, "injected"));
    }
    if (failureDraw < settings.errorRate) {
      return reply(errorAnswer(503, "demo model overloaded (injected by errorRate)", "overloaded"));
    }
    return reply(result, {
      firstTokenMs: overrides.firstTokenMs ?? settings.firstTokenMs,
      interTokenMs: overrides.interTokenMs ?? settings.interTokenMs,
    });
  }

  function handleControl(method: string, path: string, read: BodyRead, res: ServerResponse): void {
    const endpoint = `${method} ${path}`;
    const [status, body] = controlAnswer(endpoint, read);
    sendJson(res, status, body, {});
  }

  function controlAnswer(endpoint: string, read: BodyRead): [number, JsonValue] {
    if (endpoint === "GET /__demo/stats") return [200, statsJson()];
    if (endpoint === "GET /__demo/requests") return [200, recordedJson()];
    if (endpoint === "GET /__demo/config") return [200, { ...settings }];
    if (endpoint === "POST /__demo/reset") {
      model.reset();
      return [200, statsJson()];
    }
    if (endpoint === "POST /__demo/config") {
      const patch = read.ok ? parseJson(read.bytes) : undefined;
      if (patch === undefined) {
        return [400, { error: { message: "config patch must be a JSON object", type: "invalid_request_error" } }];
      }
      const result = model.configure(patch);
      if (!result.ok) return [400, { error: { message: result.error, type: "invalid_request_error" } }];
      return [200, { ...result.settings }];
    }
    return [404, { error: { message: `no control endpoint ${endpoint}`, type: "not_found" } }];
  }

  function record(request: RecordedRequest): void {
    recorded.push(request);
    if (recorded.length > RECORDED_REQUESTS) recorded.shift();
  }

  function statsJson(): { [key: string]: JsonValue } {
    const stats = model.stats();
    return { ...stats, byPath: { ...stats.byPath }, byStatus: { ...stats.byStatus } };
  }

  function recordedJson(): JsonValue {
    return recorded.map((request) => ({ ...request, headers: { ...request.headers } }));
  }

  const model: DemoModel = {
    listen(port = 0, host = "127.0.0.1") {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          const address = server.address() as AddressInfo;
          const urlHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
          resolve({ host: address.address, port: address.port, url: `http://${urlHost}:${address.port}` });
        });
      });
    },

    close() {
      batcher.close();
      closing.abort();
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },

    stats() {
      return {
        pool: settings.pool,
        version: settings.version,
        variant: settings.variant,
        served,
        abandoned,
        byPath: { ...byPath },
        byStatus: { ...byStatus },
        inFlight,
        maxInFlight,
        active: batcher.active,
        maxActive: batcher.maxActive,
        waiting: batcher.waiting,
        streamsCompleted,
        streamsCancelled,
      };
    },

    requests() {
      return [...recorded];
    },

    reset() {
      served = 0;
      abandoned = 0;
      streamsCompleted = 0;
      streamsCancelled = 0;
      byPath = {};
      byStatus = {};
      pathLabel = new BoundedLabel(MAX_PATH_KEYS, 200);
      maxInFlight = inFlight;
      batcher.resetPeak();
      recorded = [];
      random = seededRandom(settings.seed);
      jitter = seededRandom(settings.seed + 1);
    },

    configure(patch) {
      const parsed = demoPatchSchema.safeParse(patch);
      if (!parsed.success) return { ok: false, error: describeIssues(parsed.error) };
      const changes = Object.fromEntries(Object.entries(parsed.data).filter(([, value]) => value !== undefined));
      settings = { ...settings, ...changes };
      batcher.setLimits(settings);
      if (parsed.data.seed !== undefined) {
        random = seededRandom(settings.seed);
        jitter = seededRandom(settings.seed + 1);
      }
      return { ok: true, settings };
    },

    settings() {
      return settings;
    },
  };
  return model;
}
