// The guard's gRPC server: ext_proc plus grpc.health.v1 on one port (Envoy health-checks the guard
// cluster there), bound to loopback TCP or a Unix socket with an explicit file mode.
//
// Why not @grpc/grpc-js: every ext_proc stream is one short HTTP exchange, so per-stream cost is
// the guard's overhead. grpc-js builds an interceptor chain, metadata objects, channelz entries
// and two object-mode Node streams per call; the transport was ~43% of the guard's CPU in the
// benchmark profile. This server speaks the same wire protocol (HTTP/2, length-prefixed
// messages, status in trailers) straight on node:http2, for exactly the two services the guard
// offers, at ~20% less CPU per stream (docs/bench.md). Clients (Envoy, grpc-js, grpcurl) see a
// standard gRPC server.
import { chmod, rm } from "node:fs/promises";
import * as http2 from "node:http2";
import type { GuardConfig } from "../config/schema.js";
import { type ProcessCall, processMethod } from "../extproc/service.js";
import type { StreamDeps } from "../extproc/stream.js";
import { parseAddress } from "../util/address.js";
import { ByteBudget } from "./byte-budget.js";
import {
  type CallRefusal,
  GRPC_RESPONSE_HEADERS,
  GrpcStatus,
  Http2ServerCall,
  type MethodHandler,
  type ServerCall,
} from "./grpc-call.js";
import { HealthService } from "./health.js";
import { HeapOverload } from "./overload.js";
import { createServerMetrics } from "./server-metrics.js";

export type ServerLimits = GuardConfig["limits"];

/** Why the server refused a stream or a connection before any call began. */
type ServerRefusal = "max_streams" | "heap_overload" | "max_connections" | "preface_timeout";

export const EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor";
const PROCESS_PATH = `/${EXT_PROC_SERVICE}/Process`;

// A 2 MiB stream window lets Envoy send a large buffered body without waiting for
// WINDOW_UPDATEs after every 64 KiB (HTTP/2's default).
const STREAM_WINDOW_BYTES = 2 * 1024 * 1024;
const SESSION_WINDOW_BYTES = 16 * 1024 * 1024;

export interface GrpcServer {
  /** The bound address: "host:port" with the real port, or "unix:/path". */
  readonly address: string;
  readonly activeStreams: () => number;
  setServing(serving: boolean): void;
  /** Stops accepting new streams, waits for open ones up to timeoutMs, then cuts the rest. */
  drain(timeoutMs: number): Promise<{ forced: boolean }>;
}

/** A gRPC call in the ext_proc method's terms: its two endings are gRPC statuses. */
function processCall(call: ServerCall, metadata: Parameters<MethodHandler>[1]): ProcessCall {
  const traceparent = metadata.traceparent;
  const tracestate = metadata.tracestate;
  return {
    ...(typeof traceparent === "string"
      ? { trace: typeof tracestate === "string" ? { traceparent, tracestate } : { traceparent } }
      : {}),
    onMessage: (handler) => call.onMessage(handler),
    onHalfClose: (handler) => call.onHalfClose(handler),
    onClose: (handler) => call.onClose(handler),
    send: (payload) => call.send(payload),
    end: () => call.finish(GrpcStatus.OK),
    fail: (message) => call.finish(GrpcStatus.INTERNAL, message),
  };
}

/** Answers a stream with no handler: a trailers-only gRPC status, or a plain HTTP status. */
function refuse(stream: http2.ServerHttp2Stream, answer: Refusal): void {
  stream.on("error", () => undefined);
  if (stream.destroyed || stream.closed) return;
  const headers =
    "httpStatus" in answer
      ? { ":status": answer.httpStatus, "content-type": "text/plain" }
      : {
          ...GRPC_RESPONSE_HEADERS,
          "grpc-status": String(answer.grpcStatus),
          "grpc-message": encodeURIComponent(answer.message),
        };
  try {
    stream.respond(headers, { endStream: true });
    stream.resume();
  } catch {
    stream.destroy();
  }
}

type Refusal = { grpcStatus: number; message: string } | { httpStatus: number };

/** gRPC's Content-Type: "application/grpc", optionally "+" a message encoding, optionally parameters. */
const GRPC_CONTENT_TYPE = /^application\/grpc(?:\+([^;\s]*))?\s*(?:;.*)?$/i;

/**
 * What a stream that is not a call this server can take is answered, as gRPC servers do: HTTP
 * errors for what is not gRPC at all, gRPC statuses for a gRPC call it does not implement.
 */
function refusalOf(headers: http2.IncomingHttpHeaders): Refusal | undefined {
  if (headers[":method"] !== "POST") return { httpStatus: 405 };
  const contentType = GRPC_CONTENT_TYPE.exec(headers["content-type"] ?? "");
  if (contentType === null) return { httpStatus: 415 };
  // Only protobuf: a JSON (or other) encoding of the same messages would be misread as protobuf.
  const subtype = contentType[1]?.toLowerCase();
  if (subtype !== undefined && subtype !== "proto")
    return {
      grpcStatus: GrpcStatus.UNIMPLEMENTED,
      message: `content subtype "${subtype}" is not supported; use proto`,
    };
  const encoding = headers["grpc-encoding"];
  if (encoding !== undefined && encoding !== "identity")
    return { grpcStatus: GrpcStatus.UNIMPLEMENTED, message: `grpc-encoding ${String(encoding)} is not supported` };
  return undefined;
}

export async function startGrpcServer(
  address: string,
  socketMode: string,
  deps: StreamDeps,
  limits: ServerLimits,
): Promise<GrpcServer> {
  let open = 0;
  const health = new HealthService([EXT_PROC_SERVICE]);
  const extProc = processMethod(deps, { onOpen: () => open++, onClose: () => open-- });
  const methods = new Map<string, MethodHandler>([
    [PROCESS_PATH, (call, metadata) => extProc(processCall(call, metadata))],
    ...health.methods(),
  ]);

  const server = http2.createServer({
    settings: {
      initialWindowSize: STREAM_WINDOW_BYTES,
      maxConcurrentStreams: limits.maxConcurrentStreamsPerConnection,
    },
    streamResetBurst: limits.streamResetBurst,
    streamResetRate: limits.streamResetRate,
    // Envoy multiplexes every in-flight request's ext_proc stream on one or a few connections,
    // and a buffered body may be up to limits.maxMessageBytes: node's default 10 MB per session would
    // refuse streams under load. limits.maxBufferedBytes bounds what all sessions hold instead.
    maxSessionMemory: Number.MAX_SAFE_INTEGER,
  });
  server.maxConnections = limits.maxConnections;
  const sessions = new Map<http2.ServerHttp2Session, ByteBudget>();
  const buffered = new ByteBudget(limits.maxBufferedBytes);
  const heap = new HeapOverload(limits.overloadHeapRatio);
  let streams = 0;
  const serverMetrics = createServerMetrics(deps.metrics.registry, limits, {
    connections: () => sessions.size,
    streams: () => streams,
    bufferedBytes: () => buffered.used,
    queuedReplyBytes: () => {
      let bytes = 0;
      for (const queue of sessions.values()) bytes += queue.used;
      return bytes;
    },
    heapRatio: () => heap.ratio,
  });
  const onRefused = (reason: CallRefusal | ServerRefusal): void => serverMetrics.refusals.inc({ reason });
  server.on("drop", () => onRefused("max_connections"));
  server.on("session", (session) => {
    const connectionQueue = new ByteBudget(limits.maxConnectionQueuedBytes, { oneAlwaysFits: true });
    sessions.set(session, connectionQueue);
    // Every HTTP/2 client opens with its preface, whose SETTINGS frame this is.
    const preface = setTimeout(() => {
      onRefused("preface_timeout");
      session.destroy();
    }, limits.prefaceTimeoutMs).unref();
    session.once("remoteSettings", () => clearTimeout(preface));
    session.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) =>
      onStream(stream, headers, connectionQueue),
    );
    session.on("close", () => {
      clearTimeout(preface);
      sessions.delete(session);
    });
    session.on("error", (error) => deps.log.debug({ err: error }, "gRPC connection error"));
    session.setLocalWindowSize(SESSION_WINDOW_BYTES);
  });
  server.on("sessionError", () => undefined);
  /** The server's own refusal of a new stream, or none: too many streams, or the heap near its limit. */
  const overLimit = (path: string): { reason: ServerRefusal; message: string } | undefined => {
    if (streams >= limits.maxStreams)
      return { reason: "max_streams", message: `${limits.maxStreams} streams are open (limits.maxStreams)` };
    // Health checks stay answered: Envoy should see a live guard that refuses work, not a dead one.
    if (path === PROCESS_PATH && heap.overloaded)
      return { reason: "heap_overload", message: "the guard is overloaded (limits.overloadHeapRatio); retry later" };
    return undefined;
  };
  const onStream = (
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    connectionQueue: ByteBudget,
  ): void => {
    const path = headers[":path"] ?? "";
    const method = methods.get(path);
    const refusal = refusalOf(headers);
    if (refusal !== undefined || method === undefined) {
      refuse(stream, refusal ?? { grpcStatus: GrpcStatus.UNIMPLEMENTED, message: `unknown method ${path}` });
      return;
    }
    const over = overLimit(path);
    if (over !== undefined) {
      onRefused(over.reason);
      refuse(stream, { grpcStatus: GrpcStatus.RESOURCE_EXHAUSTED, message: over.message });
      return;
    }
    streams++;
    stream.once("close", () => streams--);
    const call = new Http2ServerCall(stream, {
      maxMessageBytes: limits.maxMessageBytes,
      maxQueuedBytes: limits.maxStreamQueuedBytes,
      connectionQueue,
      buffered,
      idleTimeoutMs: limits.streamIdleTimeoutMs,
      maxLifetimeMs: limits.maxStreamLifetimeMs,
      onRefused,
      onHalfCloseEnded: (ending) => {
        if (ending.kind === "answered") serverMetrics.halfCloseAnswer.observe(ending.seconds);
        else serverMetrics.halfCloseResets.inc();
      },
    });
    try {
      method(call, headers);
    } catch (error) {
      // A throw in a "stream" listener would take the process down with it.
      deps.log.error(
        { err: error instanceof Error ? error.message : String(error), path },
        "gRPC method failed to start",
      );
      call.finish(GrpcStatus.INTERNAL, "internal error");
    }
  };

  const target = parseAddress(address);
  const socketPath = "path" in target ? target.path : undefined;
  // A stale socket file from a crashed run would make bind fail.
  if (socketPath !== undefined) await rm(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const onListening = (): void => {
      server.off("error", reject);
      resolve();
    };
    if ("path" in target) server.listen(target.path, onListening);
    else server.listen(target.port, target.host, onListening);
  });
  server.on("error", (error) => deps.log.error({ err: error }, "gRPC server error"));
  if (socketPath !== undefined) await chmod(socketPath, Number.parseInt(socketMode, 8));
  const bound = server.address();
  const boundAddress =
    socketPath !== undefined || bound === null || typeof bound === "string"
      ? address
      : `${address.slice(0, address.lastIndexOf(":"))}:${bound.port}`;

  return {
    address: boundAddress,
    activeStreams: () => open,
    setServing(serving) {
      health.setServing(serving);
    },
    drain(timeoutMs) {
      return new Promise((resolve) => {
        health.shutdown();
        let timer: NodeJS.Timeout | undefined;
        // Resolves once every connection is gone; the GOAWAYs below let open streams finish first.
        server.close(() => {
          clearTimeout(timer);
          resolve({ forced: false });
        });
        for (const session of sessions.keys()) session.close();
        timer = setTimeout(() => {
          for (const session of sessions.keys()) session.destroy();
          resolve({ forced: true });
        }, timeoutMs);
      });
    },
  };
}
