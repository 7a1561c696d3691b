// The load generator of `make bench-streaming`, run as a child process (several of them, forked by
// main.ts) so that reading and timing events never competes with the harness's own work in one
// event loop. Each "user" is a closed loop: send a streamed chat request, read every Server-Sent
// Event as it arrives (timed with performance.now() at the chunk that completed it), send the next.
//
// Protocol (IPC with the parent):
//   parent → { type: "start", ...ClientPlan }   users start, staggered over plan.staggerMs
//   parent → { type: "mark" }                   child → { type: "mark", events }: events read so far;
//                                                the first mark also starts recording streams
//   parent → { type: "stop" }                   no new streams; child → { type: "done", ... } once
//                                                the streams in flight ended; the parent then kills it
import { Agent, request } from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";

export interface ClientPlan {
  /** Envoy's listener, e.g. http://127.0.0.1:10000 */
  readonly baseUrl: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly users: number;
  /** Users start at random moments within this window so their events do not arrive in lockstep. */
  readonly staggerMs: number;
  /** Tags the query string (?bench=<tag>.<user>.<n>) so every request is distinct. */
  readonly tag: string;
  readonly timeoutMs: number;
}

/** One stream that started between the first and the second mark. */
export interface StreamRecord {
  /** HTTP status; 0 = transport error or timeout. */
  readonly status: number;
  /** Ended with `data: [DONE]` and carried no `event: error`. */
  readonly complete: boolean;
  readonly sawDone: boolean;
  readonly errorEvent: boolean;
  /** Ms from sending the request to the first event / the first event with non-empty content / the last event. */
  readonly firstEventMs: number | null;
  readonly firstContentMs: number | null;
  readonly lastEventMs: number | null;
  readonly events: number;
  /** Ms between each event and the one before it (events - 1 values). */
  readonly gapsMs: number[];
}

export type ParentMessage = ({ type: "start" } & ClientPlan) | { type: "mark" } | { type: "stop" };

export type ChildMessage =
  | { type: "mark"; events: number }
  | {
      type: "done";
      streams: StreamRecord[];
      /** Streams of the measured window still unfinished when stopped (counted, not recorded). */
      unfinished: number;
      /**
       * How late this client's event loop ran a LOOP_SAMPLE_MS timer during the window (the
       * interval itself subtracted), ms: a busy client would blur the timings.
       */
      loopDelayP50Ms: number;
      loopDelayP99Ms: number;
    }
  | { type: "error"; message: string };

const DOUBLE_NEWLINE = Buffer.from("\n\n");
const DONE = Buffer.from("data: [DONE]");
const ERROR_EVENT = Buffer.from("event: error");
/** `"content":"` followed by anything but the closing quote: a delta with text in it. */
const CONTENT = Buffer.from('"content":"');

function hasContent(event: Buffer): boolean {
  for (let at = event.indexOf(CONTENT); at !== -1; at = event.indexOf(CONTENT, at + 1)) {
    if (event[at + CONTENT.length] !== 0x22) return true;
  }
  return false;
}

let eventsRead = 0;
let recording = false;
let stopping = false;
const records: StreamRecord[] = [];
let inFlightRecorded = 0;
const LOOP_SAMPLE_MS = 5;
const loopDelay = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });

/** Resolves with the HTTP status (0: no answer) once the stream ended. */
function send(plan: ClientPlan, agent: Agent, url: URL, record: boolean): Promise<number> {
  return new Promise((resolve) => {
    const started = performance.now();
    let status = 0;
    let firstEventMs: number | null = null;
    let firstContentMs: number | null = null;
    let lastEventMs: number | null = null;
    let previous: number | null = null;
    let events = 0;
    let done = false;
    let errored = false;
    const gapsMs: number[] = [];
    let pending: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (record) {
        inFlightRecorded--;
        records.push({
          status,
          complete: status === 200 && done && !errored,
          sawDone: done,
          errorEvent: errored,
          firstEventMs,
          firstContentMs,
          lastEventMs,
          events,
          gapsMs,
        });
      }
      resolve(status);
    };
    if (record) inFlightRecorded++;
    const req = request(url, { method: "POST", agent, headers: plan.headers }, (res) => {
      status = res.statusCode ?? 0;
      res.on("data", (chunk: Buffer) => {
        const now = performance.now() - started;
        let data = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        for (let end = data.indexOf(DOUBLE_NEWLINE); end !== -1; end = data.indexOf(DOUBLE_NEWLINE)) {
          const event = data.subarray(0, end);
          data = data.subarray(end + 2);
          events++;
          eventsRead++;
          firstEventMs ??= now;
          if (firstContentMs === null && hasContent(event)) firstContentMs = now;
          if (previous !== null) gapsMs.push(now - previous);
          previous = now;
          lastEventMs = now;
          if (event.indexOf(DONE) === 0) done = true;
          if (event.indexOf(ERROR_EVENT) !== -1) errored = true;
        }
        // A copy: the remainder would otherwise keep the whole socket chunk alive.
        pending = data.length === 0 ? Buffer.alloc(0) : Buffer.from(data);
      });
      res.on("end", finish);
      res.on("error", finish);
      res.on("close", finish);
    });
    const timer = setTimeout(() => req.destroy(new Error("timeout")), plan.timeoutMs);
    req.on("error", finish);
    req.end(plan.body);
  });
}

async function user(plan: ClientPlan, agent: Agent, index: number): Promise<void> {
  await sleep(Math.random() * plan.staggerMs);
  for (let n = 0; !stopping; n++) {
    const url = new URL(`${plan.path}?bench=${plan.tag}.${process.pid}.${index}.${n}`, plan.baseUrl);
    const status = await send(plan, agent, url, recording);
    // A failing stack must not turn the loop into a busy one.
    if (status !== 200) await sleep(50);
  }
}

function reply(message: ChildMessage): void {
  process.send?.(message);
}

let users: Promise<void>[] = [];
let marks = 0;

process.on("message", (message: ParentMessage) => {
  switch (message.type) {
    case "start": {
      const agent = new Agent({ keepAlive: true, maxSockets: message.users, maxFreeSockets: message.users });
      users = Array.from({ length: message.users }, (_, index) => user(message, agent, index));
      return;
    }
    case "mark":
      marks++;
      if (marks === 1) {
        recording = true;
        loopDelay.enable();
      } else {
        recording = false;
        loopDelay.disable();
      }
      reply({ type: "mark", events: eventsRead });
      return;
    case "stop": {
      stopping = true;
      // The parent ends this process once it has the answer: disconnecting here could drop a
      // large answer still being written to the channel.
      void Promise.all(users).then(() =>
        reply({
          type: "done",
          streams: records,
          unfinished: inFlightRecorded,
          loopDelayP50Ms: Math.max(0, loopDelay.percentile(50) / 1e6 - LOOP_SAMPLE_MS),
          loopDelayP99Ms: Math.max(0, loopDelay.percentile(99) / 1e6 - LOOP_SAMPLE_MS),
        }),
      );
      return;
    }
  }
});
process.on("uncaughtException", (error) => {
  reply({ type: "error", message: error.message });
  process.exit(1);
});
