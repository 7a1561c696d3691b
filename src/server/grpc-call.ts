// One gRPC call on an HTTP/2 stream, as method handlers see it: messages in (one at a time),
// messages out, a status in the trailers. The protocol rules live here so handlers deal in bytes.
import type * as http2 from "node:http2";
import { frameMessage, MessageDeframer } from "./grpc-framing.js";

/** gRPC status codes the server produces. */
export const GrpcStatus = {
  OK: 0,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/**
 * One call as a method handler sees it. Messages arrive one at a time: the next is delivered only
 * after the promise returned for the previous one settles, which bounds what a flooding peer can
 * queue in the guard (HTTP/2 flow control holds the rest in the peer).
 */
export interface ServerCall {
  onMessage(handler: (bytes: Buffer) => Promise<void> | void): void;
  /** The peer half-closed: no more messages will come. Called after the last message was handled. */
  onHalfClose(handler: () => void): void;
  /**
   * The HTTP/2 stream closed; called once, at once, even while a message is still being handled
   * (that is how a handler learns its peer left). aborted: no status from us reached the peer
   * (peer cancel/reset, connection loss, server shutdown).
   */
  onClose(handler: (aborted: boolean) => void): void;
  send(payload: Uint8Array): void;
  /** Ends the call with a status (idempotent; later calls are ignored). */
  finish(code: number, message?: string): void;
}

export type MethodHandler = (call: ServerCall) => void;

export const GRPC_RESPONSE_HEADERS = {
  ":status": 200,
  "content-type": "application/grpc",
  "grpc-accept-encoding": "identity",
};

export class Http2ServerCall implements ServerCall {
  readonly #stream: http2.ServerHttp2Stream;
  readonly #deframer: MessageDeframer;
  readonly #maxMessageBytes: number;
  #messageHandler: (bytes: Buffer) => Promise<void> | void = () => undefined;
  #halfCloseHandler: () => void = () => undefined;
  #closeHandler: (aborted: boolean) => void = () => undefined;
  #handling: Promise<void> = Promise.resolve();
  #headersSent = false;
  #finished = false;
  #closed = false;

  constructor(stream: http2.ServerHttp2Stream, maxMessageBytes: number) {
    this.#stream = stream;
    this.#maxMessageBytes = maxMessageBytes;
    this.#deframer = new MessageDeframer(maxMessageBytes);
    stream.on("data", (chunk: Buffer) => this.#onData(chunk));
    stream.on("end", () => {
      void this.#handling.then(() => {
        if (this.#over()) return;
        if (this.#deframer.buffered > 0) this.finish(GrpcStatus.INTERNAL, "stream ended inside a message");
        else this.#halfCloseHandler();
      });
    });
    // Stream errors (a reset, a lost connection) also end in "close"; the listener keeps them from
    // crashing the process.
    stream.on("error", () => undefined);
    stream.on("close", () => {
      this.#closed = true;
      this.#closeHandler(!this.#finished);
    });
  }

  /** Finished by us or closed by the peer: nothing more is sent or delivered. */
  #over(): boolean {
    return this.#finished || this.#closed;
  }

  onMessage(handler: (bytes: Buffer) => Promise<void> | void): void {
    this.#messageHandler = handler;
  }

  onHalfClose(handler: () => void): void {
    this.#halfCloseHandler = handler;
  }

  onClose(handler: (aborted: boolean) => void): void {
    this.#closeHandler = handler;
  }

  send(payload: Uint8Array): void {
    if (this.#over()) return;
    this.#write(() => {
      this.#sendHeaders();
      this.#stream.write(frameMessage(payload));
    });
  }

  finish(code: number, message?: string): void {
    if (this.#over()) return;
    this.#finished = true;
    const trailers: http2.OutgoingHttpHeaders = { "grpc-status": String(code) };
    if (message !== undefined) trailers["grpc-message"] = encodeURIComponent(message);
    this.#write(() => {
      if (this.#headersSent) {
        // "wantTrailers" comes after end(), so not through #write (the stream is ended by then).
        this.#stream.once("wantTrailers", () => {
          try {
            this.#stream.sendTrailers(trailers);
          } catch {
            this.#stream.destroy();
          }
        });
        this.#stream.end();
      } else {
        // Trailers-only response: one HEADERS frame with END_STREAM.
        this.#stream.respond({ ...GRPC_RESPONSE_HEADERS, ...trailers }, { endStream: true });
      }
    });
    // Keep draining (and ignoring) whatever the peer still sends, so its half can close too.
    this.#stream.resume();
  }

  /**
   * node:http2 throws when a stream was reset or its session went away between our check and
   * the call; the peer is gone then, so the call is simply over (its "close" follows).
   */
  #write(action: () => void): void {
    if (this.#stream.destroyed || this.#stream.closed || this.#stream.writableEnded) return;
    try {
      action();
    } catch {
      this.#stream.destroy();
    }
  }

  #sendHeaders(): void {
    if (this.#headersSent) return;
    this.#headersSent = true;
    this.#stream.respond(GRPC_RESPONSE_HEADERS, { waitForTrailers: true });
  }

  #onData(chunk: Buffer): void {
    if (this.#over()) return;
    for (const result of this.#deframer.push(chunk)) {
      if (result.type === "too_large") {
        this.finish(
          GrpcStatus.RESOURCE_EXHAUSTED,
          `message of ${result.length} bytes exceeds the ${this.#maxMessageBytes}-byte limit`,
        );
        return;
      }
      if (result.type === "compressed") {
        this.finish(GrpcStatus.UNIMPLEMENTED, "compressed messages are not supported (grpc-accept-encoding: identity)");
        return;
      }
      this.#deliver(result.bytes);
    }
  }

  #deliver(bytes: Buffer): void {
    this.#stream.pause();
    this.#handling = this.#handling
      .then(() => (this.#over() ? undefined : this.#messageHandler(bytes)))
      .catch(() => this.finish(GrpcStatus.INTERNAL, "the message could not be handled"))
      .finally(() => {
        if (!this.#over()) this.#stream.resume();
      });
  }
}
