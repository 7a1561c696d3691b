// The ext_proc method on the guard's gRPC server: decodes Envoy's frames for StreamProcessor and
// encodes its answers. A thin adapter; the protocol logic is in stream.ts.
import type { MethodHandler } from "../server/grpc-call.js";
import { GrpcStatus } from "../server/grpc-call.js";
import { externalProcessorCodec } from "./proto.js";
import { type StreamDeps, StreamProcessor } from "./stream.js";

export interface ProcessHandlerHooks {
  /** Streams currently open, so a drain can wait for them. */
  readonly onOpen?: () => void;
  readonly onClose?: () => void;
}

export function processMethod(deps: StreamDeps, hooks: ProcessHandlerHooks = {}): MethodHandler {
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
        call.finish(GrpcStatus.OK);
        close();
      },
    );
    const fail = (kind: "undecodable_frame" | "handler_error", error: unknown): void => {
      deps.metrics.anomalies.inc({ kind });
      close(error);
      call.finish(
        GrpcStatus.INTERNAL,
        kind === "undecodable_frame" ? "undecodable ext_proc message" : "internal error",
      );
    };
    call.onMessage((bytes) => {
      const decoded = codec.decode(bytes);
      if (!decoded.ok) return fail("undecodable_frame", decoded.error);
      return processor.handle(decoded.frame).catch((error: unknown) => fail("handler_error", error));
    });
    // Envoy half-closes when it needs nothing more (or gives up): the exchange is over either way.
    call.onHalfClose(() => {
      close();
      call.finish(GrpcStatus.OK);
    });
    call.onClose(() => close());
  };
}
