// One gRPC call on an HTTP/2 stream, as method handlers see it: messages in (one at a time),
// messages out, a status in the trailers. The protocol rules live here so handlers deal in bytes.
import * as http2 from "node:http2";
import { BudgetShare, type ByteBudget } from "./byte-budget.js";
import { type FrameResult, frameMessage, MessageDeframer } from "./grpc-framing.js";

/** gRPC status codes the server produces. */
export const GrpcStatus = {
  OK: 0,
  DEADLINE_EXCEEDED: 4,
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

/** A method's handler, with the call's request headers (its gRPC metadata). */
export type MethodHandler = (
  call: ServerCall,
  metadata: Readonly<Record<string, string | string[] | undefined>>,
) => void;

/** Why the server, not the handler, ended a call: a limit of the guard's config (limits). */
export type CallRefusal =
  | "stream_reply_queue"
  | "connection_reply_queue"
  | "memory_budget"
  | "stream_idle"
  | "stream_lifetime";

export interface CallLimits {
  readonly maxMessageBytes: number;
  /** Reply bytes the stream may have waiting for its peer's flow-control window (limits.maxStreamQueuedBytes). */
  readonly maxQueuedBytes: number;
  /** The reply bytes waiting on the stream's connection, shared by all its calls. */
  readonly connectionQueue: ByteBudget;
  /** Message bytes held by all calls of the server, from a message's prefix until it was handled. */
  readonly buffered: ByteBudget;
  /** How long the stream may stay open before its first bytes. */
  readonly idleTimeoutMs: number;
  readonly maxLifetimeMs: number;
  readonly onRefused?: (refusal: CallRefusal) => void;
  /**
   * The peer half-closed and then: `answered` after `seconds` (our status went out), or `reset`
   * the stream before our status did. Envoy with ext_proc_graceful_grpc_close half-closes when it
   * is done and resets a stream still open after its remote-close timeout (1 s by default).
   */
  readonly onHalfCloseEnded?: (
    ending: { readonly kind: "answered"; readonly seconds: number } | { readonly kind: "reset" },
  ) => void;
}

export const GRPC_RESPONSE_HEADERS = {
  ":status": 200,
  "content-type": "application/grpc",
  "grpc-accept-encoding": "identity",
};

/**
 * Replies are written as they come, and the stream is read no further while any of them waits for
 * the peer to take it: a peer that stops reading is stopped from sending by HTTP/2 flow control
 * instead of growing the guard's memory.
 * Replies the handler sends on its own are bounded by limits.maxQueuedBytes and the connection's
 * queue; past either the stream is reset with ENHANCE_YOUR_CALM, which gRPC clients report as
 * RESOURCE_EXHAUSTED (trailers could not pass the replies already stuck ahead of them). So is a
 * stream whose next message does not fit the server's memory budget (limits.buffered).
 */
export class Http2ServerCall implements ServerCall {
  readonly #stream: http2.ServerHttp2Stream;
  readonly #deframer: MessageDeframer;
  readonly #limits: CallLimits;
  #messageHandler: (bytes: Buffer) => Promise<void> | void = () => undefined;
  #halfCloseHandler: () => void = () => undefined;
  #closeHandler: (aborted: boolean) => void = () => undefined;
  #handling: Promise<void> = Promise.resolve();
  /** #read is taking messages: data that arrives meanwhile waits for it. */
  #reading = false;
  /** Reply bytes written and not yet taken by the peer: this call's part of its connection's queue. */
  readonly #queued: BudgetShare;
  /** Writes whose bytes the peer has not taken yet, and who waits for them to be taken. */
  #unsent = 0;
  #whenSent: (() => void) | undefined;
  /** Message bytes this call holds of limits.buffered. */
  readonly #held: BudgetShare;
  readonly #idleTimer: NodeJS.Timeout;
  readonly #lifetimeTimer: NodeJS.Timeout;
  #headersSent = false;
  #finished = false;
  #closed = false;
  /** performance.now() when the peer's half-close arrived. */
  #peerEndedAt: number | undefined;

  constructor(stream: http2.ServerHttp2Stream, limits: CallLimits) {
    this.#stream = stream;
    this.#limits = limits;
    this.#queued = new BudgetShare(limits.connectionQueue, limits.maxQueuedBytes);
    this.#held = new BudgetShare(limits.buffered);
    this.#deframer = new MessageDeframer(limits.maxMessageBytes, (length) => this.#held.take(length) === undefined);
    this.#idleTimer = setTimeout(
      () => this.#expire("stream_idle", `nothing sent within ${limits.idleTimeoutMs} ms`),
      limits.idleTimeoutMs,
    ).unref();
    this.#lifetimeTimer = setTimeout(
      () => this.#expire("stream_lifetime", `the stream was open longer than ${limits.maxLifetimeMs} ms`),
      limits.maxLifetimeMs,
    ).unref();
    stream.on("data", (chunk: Buffer) => this.#onData(chunk));
    stream.on("end", () => {
      this.#peerEndedAt = performance.now();
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
      clearTimeout(this.#idleTimer);
      clearTimeout(this.#lifetimeTimer);
      // Writes still queued fail with the stream; their bytes leave the connection's queue now, and
      // the messages still held leave the memory budget.
      this.#queued.close();
      this.#held.close();
      this.#whenSent?.();
      if (!this.#finished && this.#peerEndedAt !== undefined) this.#limits.onHalfCloseEnded?.({ kind: "reset" });
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
    const frame = frameMessage(payload);
    const refused = this.#queued.take(frame.length);
    if (refused !== undefined) {
      this.#refuse(refused === "own" ? "stream_reply_queue" : "connection_reply_queue");
      return;
    }
    this.#write(() => {
      this.#sendHeaders();
      this.#unsent++;
      this.#stream.write(frame, () => {
        this.#queued.give(frame.length);
        this.#unsent--;
        if (this.#unsent === 0) this.#whenSent?.();
      });
    });
  }

  #expire(refusal: CallRefusal, message: string): void {
    if (this.#over()) return;
    this.#limits.onRefused?.(refusal);
    this.finish(GrpcStatus.DEADLINE_EXCEEDED, message);
  }

  #refuse(refusal: CallRefusal): void {
    this.#finished = true;
    this.#limits.onRefused?.(refusal);
    if (!this.#stream.destroyed) this.#stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  }

  finish(code: number, message?: string): void {
    if (this.#over()) return;
    this.#finished = true;
    if (this.#peerEndedAt !== undefined)
      this.#limits.onHalfCloseEnded?.({ kind: "answered", seconds: (performance.now() - this.#peerEndedAt) / 1000 });
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
    // A slow message is not an idle stream; maxLifetimeMs bounds a slow one.
    clearTimeout(this.#idleTimer);
    if (this.#over()) return;
    this.#deframer.append(chunk);
    if (!this.#reading) this.#handling = this.#read();
  }

  /**
   * Takes the messages received so far one at a time, each handled and its replies taken by the
   * peer before the next; the stream is paused meanwhile, so what the peer sends waits in HTTP/2
   * flow control. Refusals end the stream.
   */
  async #read(): Promise<void> {
    this.#reading = true;
    this.#stream.pause();
    for (let result = this.#deframer.next(); result !== undefined && !this.#over(); result = this.#deframer.next()) {
      if (result.type !== "message") {
        this.#refuseMessage(result);
        break;
      }
      try {
        await this.#messageHandler(result.bytes);
      } catch {
        this.finish(GrpcStatus.INTERNAL, "the message could not be handled");
      }
      await this.#replyTaken();
      this.#held.give(result.bytes.length);
    }
    this.#reading = false;
    if (!this.#over()) this.#stream.resume();
  }

  /**
   * After the answer, asks a peer still sending a refused message to stop (RFC 9113 §8.1: a
   * complete response, then RST_STREAM with NO_ERROR); otherwise the guard would go on reading,
   * and dropping, all of it: a refused 60 MiB message cost as much as one read.
   */
  #stopPeer(): void {
    if (this.#peerEndedAt === undefined && !this.#stream.destroyed)
      this.#stream.close(http2.constants.NGHTTP2_NO_ERROR);
  }

  #refuseMessage(result: Exclude<FrameResult, { type: "message" }>): void {
    switch (result.type) {
      case "too_large":
        this.finish(
          GrpcStatus.RESOURCE_EXHAUSTED,
          `message of ${result.length} bytes exceeds the ${this.#limits.maxMessageBytes}-byte limit`,
        );
        this.#stopPeer();
        return;
      case "compressed":
        this.finish(GrpcStatus.UNIMPLEMENTED, "compressed messages are not supported (grpc-accept-encoding: identity)");
        this.#stopPeer();
        return;
      case "not_admitted":
        // A reset, not a status: the peer is still sending the message, and node:http2 loses a
        // response that ends the stream under incoming data (it resets it with ENHANCE_YOUR_CALM
        // itself). The reset also stops the peer sending bytes nobody will read.
        this.#refuse("memory_budget");
        return;
    }
  }

  /**
   * Settles once every reply written was taken by the peer (or the stream closed). Counted in
   * writes, not bytes: a queued write costs the process far more than its bytes (measured: 500
   * streams under a 16 KiB high-water mark each queued 860 000 replies of 7 bytes, 280 MB of heap).
   */
  #replyTaken(): Promise<void> | undefined {
    if (this.#over() || this.#unsent === 0) return undefined;
    return new Promise((resolve) => {
      this.#whenSent = resolve;
    });
  }
}
