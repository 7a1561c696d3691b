// The gRPC binding: a thin adapter from grpc-js's duplex call to StreamProcessor.
import type * as grpc from "@grpc/grpc-js";
import { StreamProcessor, type StreamDeps } from "./stream.js";
import type { ProcessingRequest, ProcessingResponse } from "./wire.js";

export interface ProcessHandlerHooks {
  /** Streams currently open, so a drain can wait for them. */
  readonly onOpen?: () => void;
  readonly onClose?: () => void;
}

export function processHandler(deps: StreamDeps, hooks: ProcessHandlerHooks = {}): grpc.handleBidiStreamingCall<ProcessingRequest, ProcessingResponse> {
  return (call) => {
    hooks.onOpen?.();
    const processor = new StreamProcessor(
      deps,
      (frame) => {
        if (!call.writableEnded && !call.destroyed) call.write(frame);
      },
      // Ending the call as soon as the exchange is complete sends the trailers before Envoy
      // closes its side, so Envoy (with ext_proc_graceful_grpc_close) closes cleanly instead of
      // resetting the stream.
      () => {
        if (!call.writableEnded && !call.destroyed) call.end();
      },
    );
    let closed = false;
    const close = (error?: unknown): void => {
      if (closed) return;
      closed = true;
      processor.close(error);
      hooks.onClose?.();
    };
    call.on("cancelled", () => close());
    call.on("error", (error) => close(error));
    // Envoy sends the next frame only after our answer (outside observability mode), so handling
    // frames one at a time loses no concurrency; pausing keeps a flooding peer from queueing more.
    // Not `for await`: its iterator destroys the call when the peer half-closes, so a stream the
    // peer ends before the exchange is done would never get its OK status. "end" can fire while
    // the last frame is still being handled (pause() does not hold it back): end after the answer.
    let handling: Promise<void> = Promise.resolve();
    call.on("data", (frame: ProcessingRequest) => {
      call.pause();
      handling = processor.handle(frame).then(
        () => void call.resume(),
        (error: unknown) => close(error),
      );
    });
    call.on("end", () => {
      void handling.then(() => {
        close();
        if (!call.writableEnded && !call.destroyed) call.end();
      });
    });
  };
}
