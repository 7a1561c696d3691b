// The ext_proc method: decodes Envoy's frames for StreamProcessor and encodes its answers. A thin
// adapter; the protocol logic is in stream.ts, the transport (gRPC over HTTP/2) in src/server,
// which hands each call over in the small vocabulary below.

import type { TraceContext } from "../tracing/traceparent.js";
import { externalProcessorCodec } from "./proto.js";
import { type StreamDeps, StreamProcessor } from "./stream.js";

/** One ext_proc call as the method needs it: message bytes in and out, and how the call ends. */
export interface ProcessCall {
  /** The next message is delivered once the promise returned for the previous one settles. */
  onMessage(handler: (bytes: Buffer) => Promise<void> | void): void;
  /** Envoy half-closed: no more messages will come. */
  onHalfClose(handler: () => void): void;
  /** The call is gone (finished, or the peer left); called once. */
  onClose(handler: () => void): void;
  send(payload: Uint8Array): void;
  /** Ends the call successfully (idempotent, like fail). */
  end(): void;
  /** Ends the call with an internal error whose message the peer sees. */
  fail(message: string): void;
  /** The call's own W3C trace context (gRPC metadata): Envoy's ext_proc span, with its tracer on. */
  readonly trace?: TraceContext;
}

export interface ProcessHandlerHooks {
  /** Streams currently open, so a drain can wait for them. */
  readonly onOpen?: () => void;
  readonly onClose?: () => void;
}

export function processMethod(deps: StreamDeps, hooks: ProcessHandlerHooks = {}): (call: ProcessCall) => void {
  const codec = externalProcessorCodec();
  return (call) => {
    hooks.onOpen?.();
    // Ending the call as soon as the exchange is complete sends the trailers before Envoy closes
    // its side, so Envoy (with ext_proc_graceful_grpc_close) closes cleanly instead of resetting
    // the stream.
    let closed = false;
    const close = (error?: unknown): void => {
      if (closed) return;
      closed = true;
      processor.close(error);
      hooks.onClose?.();
    };
    const processor = new StreamProcessor(
      deps,
      (frame) => call.send(codec.encode(frame)),
      () => {
        call.end();
        close();
      },
      call.trace,
    );
    const fail = (kind: "undecodable_frame" | "handler_error", error: unknown): void => {
      deps.metrics.anomalies.inc({ kind });
      close(error);
      call.fail(kind === "undecodable_frame" ? "undecodable ext_proc message" : "internal error");
    };
    call.onMessage((bytes) => {
      const decoded = codec.decode(bytes);
      if (!decoded.ok) return fail("undecodable_frame", decoded.error);
      return processor.handle(decoded.frame).catch((error: unknown) => fail("handler_error", error));
    });
    // Envoy half-closes when it needs nothing more (or gives up): the exchange is over either way.
    call.onHalfClose(() => {
      close();
      call.end();
    });
    call.onClose(() => close());
  };
}
