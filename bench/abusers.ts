// Hostile local clients straight at the guard's ext_proc port, run for as long as a soak lasts
// (issue 25's evaluation): each keeps up its abuse until stopped and counts how the guard refused
// it. The guard must refuse the abuser cleanly and nothing else; bench/soak.ts measures the rest.
import * as http2 from "node:http2";
import { setTimeout as sleep } from "node:timers/promises";

const PROCESS_PATH = "/envoy.service.ext_proc.v3.ExternalProcessor/Process";
const GRPC_HEADERS = { ":method": "POST", ":path": PROCESS_PATH, "content-type": "application/grpc" };
/** A gRPC frame holding ProcessingRequest{request_trailers: {}}: each is answered with a continue. */
const TRAILERS_FRAME = Buffer.from([0, 0, 0, 0, 2, 0x32, 0x00]);

export interface AbuserReport {
  readonly name: string;
  /** Streams the abuser opened. */
  readonly streams: number;
  /** How its streams ended: "grpc-status N", "rst N" (HTTP/2 reset code), "open" at the end. */
  readonly outcomes: Record<string, number>;
}

export interface Abuser {
  stop(): Promise<AbuserReport>;
}

class Outcomes {
  readonly counts: Record<string, number> = {};
  streams = 0;

  /**
   * Counts how the guard ended a stream (its gRPC status, or a reset) and resolves then. A status
   * ends the stream on the abuser's side too: an HTTP/2 stream whose client never ends its own
   * half would otherwise stay open.
   */
  watch(stream: http2.ClientHttp2Stream): Promise<void> {
    this.streams++;
    stream.on("error", () => undefined);
    return new Promise((resolve) => {
      let counted = false;
      const ended = (outcome: string) => {
        if (counted) return;
        counted = true;
        this.counts[outcome] = (this.counts[outcome] ?? 0) + 1;
        stream.close();
        resolve();
      };
      stream.on("response", (headers) => {
        // Trailers-only: the status comes with the response headers.
        if (headers["grpc-status"] !== undefined) ended(`grpc-status ${headers["grpc-status"]}`);
      });
      stream.on("trailers", (trailers) => ended(`grpc-status ${trailers["grpc-status"]}`));
      stream.on("close", () => ended(`rst ${stream.rstCode}`));
    });
  }

  report(name: string, open: number): AbuserReport {
    return { name, streams: this.streams, outcomes: open > 0 ? { ...this.counts, open } : { ...this.counts } };
  }
}

function session(grpcUrl: string, settings?: http2.Settings): http2.ClientHttp2Session {
  const client = http2.connect(grpcUrl, settings === undefined ? {} : { settings });
  client.on("error", () => undefined);
  return client;
}

/**
 * A client that never takes a reply (HTTP/2 window 0) and keeps writing small messages on a few
 * streams: without backpressure every reply would wait in the guard. A stream the guard ends is
 * opened again.
 */
export function zeroWindowFlood(grpcUrl: string, streams = 20): Abuser {
  const outcomes = new Outcomes();
  const client = session(grpcUrl, { initialWindowSize: 0 });
  const batch = Buffer.concat(Array.from({ length: 1000 }, () => TRAILERS_FRAME));
  let stopped = false;
  let open = 0;
  const flooders = Array.from({ length: streams }, async () => {
    while (!stopped && !client.destroyed) {
      const stream = client.request(GRPC_HEADERS);
      open++;
      const ended = outcomes.watch(stream).then(() => open--);
      // Writes until HTTP/2 flow control holds them; the guard stops reading after its first reply.
      while (!stopped && !stream.closed) {
        if (!stream.write(batch)) await Promise.race([new Promise((resolve) => stream.once("drain", resolve)), ended]);
        await sleep(100);
      }
      await ended;
    }
  });
  return {
    async stop() {
      stopped = true;
      const report = outcomes.report("zero-window flood", open);
      client.destroy();
      await Promise.all(flooders);
      return report;
    },
  };
}

/**
 * One client sending ext_proc messages of `megabytes` MiB (a request body message), one after
 * another: each is held against the guard's memory budget until it is refused or answered.
 */
export function hugeBodies(grpcUrl: string, megabytes = 60, pauseMs = 1_000): Abuser {
  const outcomes = new Outcomes();
  const client = session(grpcUrl);
  const size = megabytes * 1024 * 1024;
  // ProcessingRequest{request_body (4): HttpBody{body (1): size bytes}}, framed for gRPC.
  const bodyField = Buffer.from([0x0a, ...varint(size)]);
  const messageLength = 1 + varint(bodyField.length + size).length + bodyField.length + size;
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(messageLength, 1);
  const head = Buffer.concat([prefix, Buffer.from([0x22, ...varint(bodyField.length + size)]), bodyField]);
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  let stopped = false;
  let open = 0;
  const sender = (async () => {
    while (!stopped && !client.destroyed) {
      const stream = client.request(GRPC_HEADERS);
      open++;
      const ended = outcomes.watch(stream).then(() => open--);
      stream.write(head);
      for (let sent = 0; sent < size && !stream.closed && !stopped; sent += chunk.length) {
        if (!stream.write(chunk)) await Promise.race([new Promise((resolve) => stream.once("drain", resolve)), ended]);
      }
      stream.end();
      await ended;
      await sleep(pauseMs);
    }
  })();
  return {
    async stop() {
      stopped = true;
      const report = outcomes.report(`${megabytes} MiB bodies`, open);
      client.destroy();
      await sender;
      return report;
    },
  };
}

/** Opens `batch` streams that send nothing every `everyMs`: they hold the guard until its idle timeout. */
export function idleStreams(grpcUrl: string, batch = 100, everyMs = 5_000): Abuser {
  const outcomes = new Outcomes();
  const client = session(grpcUrl);
  let stopped = false;
  let open = 0;
  const pending: Promise<unknown>[] = [];
  const opener = (async () => {
    while (!stopped && !client.destroyed) {
      for (let i = 0; i < batch; i++) {
        open++;
        pending.push(outcomes.watch(client.request(GRPC_HEADERS)).then(() => open--));
      }
      await sleep(everyMs);
    }
  })();
  return {
    async stop() {
      stopped = true;
      const report = outcomes.report("idle streams", open);
      client.destroy();
      await Promise.all([opener, ...pending]);
      return report;
    },
  };
}

function varint(value: number): number[] {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  return bytes;
}

export const ABUSERS = {
  flood: zeroWindowFlood,
  bodies: hugeBodies,
  idle: idleStreams,
} satisfies Record<string, (grpcUrl: string) => Abuser>;
export type AbuserName = keyof typeof ABUSERS;
