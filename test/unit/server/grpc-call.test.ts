// Http2ServerCall's backpressure and reply queues against a raw HTTP/2 client that controls its own
// flow-control window: a peer that stops reading must stop being read, and replies the server sends
// on its own are bounded per stream and per connection.
import * as http2 from "node:http2";
import t, { type Test } from "tap";
import { BudgetShare, ByteBudget } from "../../../src/server/byte-budget.js";
import { type CallLimits, type CallRefusal, Http2ServerCall, type ServerCall } from "../../../src/server/grpc-call.js";
import { frameMessage } from "../../../src/server/grpc-framing.js";

interface Harness {
  readonly session: http2.ClientHttp2Session;
  readonly connectionQueues: ByteBudget[];
  readonly buffered: ByteBudget;
  readonly refusals: CallRefusal[];
  open(): http2.ClientHttp2Stream;
}

/** A server whose every stream runs `handler` on an Http2ServerCall; the client starts with a window of `window`. */
async function harness(
  t: Test,
  handler: (call: ServerCall) => void,
  limits: { maxQueuedBytes: number; maxConnectionQueuedBytes: number } & Partial<CallLimits>,
  window: number,
): Promise<Harness> {
  const server = http2.createServer();
  const connectionQueues: ByteBudget[] = [];
  const buffered = limits.buffered ?? new ByteBudget(64 * 1024 * 1024);
  const refusals: CallRefusal[] = [];
  server.on("session", (session) => {
    const connectionQueue = new ByteBudget(limits.maxConnectionQueuedBytes, { oneAlwaysFits: true });
    connectionQueues.push(connectionQueue);
    session.on("stream", (stream: http2.ServerHttp2Stream) =>
      handler(
        new Http2ServerCall(stream, {
          maxMessageBytes: 1024 * 1024,
          idleTimeoutMs: 60_000,
          maxLifetimeMs: 60_000,
          ...limits,
          connectionQueue,
          buffered,
          onRefused: (refusal) => refusals.push(refusal),
        }),
      ),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: window } });
  session.on("error", () => undefined);
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        session.destroy();
        server.close(() => resolve());
      }),
  );
  return {
    session,
    connectionQueues,
    buffered,
    refusals,
    open() {
      const stream = session.request({ ":method": "POST", ":path": "/x", "content-type": "application/grpc" });
      stream.on("error", () => undefined);
      return stream;
    },
  };
}

const wait = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function closed(stream: http2.ClientHttp2Stream): Promise<number> {
  return new Promise((resolve) => stream.once("close", () => resolve(stream.rstCode ?? -1)));
}

t.test("a peer that does not read its replies is read no further; opening its window resumes both ways", async (t) => {
  let handled = 0;
  const reply = Buffer.alloc(100);
  const { open, session } = await harness(
    t,
    (call) =>
      call.onMessage(() => {
        handled++;
        call.send(reply);
      }),
    { maxQueuedBytes: 1024 * 1024, maxConnectionQueuedBytes: 1024 * 1024 },
    0,
  );
  const stream = open();
  const total = 20_000;
  const received: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => received.push(chunk));
  const message = frameMessage(Buffer.from("m"));
  for (let i = 0; i < total; i++) stream.write(message);
  await wait(300);
  const stalled = handled;
  await wait(300);
  // The first reply cannot reach the client, so no second message is read.
  t.equal(stalled, 1, `reading stopped after ${stalled} of ${total} messages`);
  t.equal(handled, stalled, "and stays stopped");
  t.equal(received.length, 0, "nothing reached the client through its zero window");
  session.settings({ initialWindowSize: 65_535 });
  while (handled < total) await wait(20);
  await wait(100);
  t.equal(handled, total, "every message handled once the peer reads");
  t.equal(Buffer.concat(received).length, total * (reply.length + 5), "and every reply arrived");
});

t.test("replies a stream sends on its own past its queue limit reset it with ENHANCE_YOUR_CALM", async (t) => {
  const { open, refusals, connectionQueues } = await harness(
    t,
    (call) =>
      call.onMessage(() => {
        for (let i = 0; i < 3; i++) call.send(Buffer.alloc(1000));
      }),
    { maxQueuedBytes: 2500, maxConnectionQueuedBytes: 1024 * 1024 },
    0,
  );
  const stream = open();
  stream.write(frameMessage(Buffer.from("go")));
  t.equal(await closed(stream), http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, "gRPC clients read RESOURCE_EXHAUSTED");
  t.same(refusals, ["stream_reply_queue"]);
  await wait(20);
  t.equal(connectionQueues[0]?.used, 0, "the reset stream's queued bytes left the connection's queue");
});

t.test("a reply larger than the stream's limit still goes out when nothing waits before it", async (t) => {
  const { open } = await harness(
    t,
    (call) =>
      call.onMessage(() => {
        call.send(Buffer.alloc(50_000));
        call.finish(0);
      }),
    { maxQueuedBytes: 1000, maxConnectionQueuedBytes: 1000 },
    65_535,
  );
  const stream = open();
  let bytes = 0;
  stream.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
  });
  stream.end(frameMessage(Buffer.from("go")));
  t.equal(await closed(stream), http2.constants.NGHTTP2_NO_ERROR);
  t.equal(bytes, 50_005);
});

t.test("the streams of one connection share its reply queue: the one that would pass it is reset", async (t) => {
  const { open, refusals, connectionQueues } = await harness(
    t,
    (call) => call.onMessage(() => call.send(Buffer.alloc(1000))),
    { maxQueuedBytes: 1024 * 1024, maxConnectionQueuedBytes: 2500 },
    0,
  );
  const streams = [open(), open(), open()];
  const ends = streams.map((stream) => closed(stream));
  for (const stream of streams) {
    stream.write(frameMessage(Buffer.from("go")));
    await wait(30);
  }
  t.equal(await ends[2], http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, "the third stream's reply did not fit");
  t.same(refusals, ["connection_reply_queue"]);
  t.equal(connectionQueues[0]?.used, 2010, "the first two replies wait");
  streams[0]?.close();
  await ends[0];
  await wait(20);
  t.equal(connectionQueues[0]?.used, 1005, "a closed stream's replies leave the queue");
});

/** The gRPC status a stream ended with (trailers, or a trailers-only response). */
function grpcStatusOf(stream: http2.ClientHttp2Stream): Promise<{ status: string; message: string }> {
  return new Promise((resolve) => {
    const seen = (headers: http2.IncomingHttpHeaders): void => {
      if (headers["grpc-status"] !== undefined)
        resolve({
          status: String(headers["grpc-status"]),
          message: decodeURIComponent(String(headers["grpc-message"] ?? "")),
        });
    };
    stream.on("response", seen);
    stream.on("trailers", seen);
  });
}

t.test("messages are held against the server's memory budget from their prefix until handled", async (t) => {
  let release: () => void = () => undefined;
  const { open, buffered, refusals } = await harness(
    t,
    (call) => call.onMessage(() => new Promise<void>((resolve) => (release = resolve))),
    { maxQueuedBytes: 1024, maxConnectionQueuedBytes: 1024, buffered: new ByteBudget(1500) },
    65_535,
  );
  const first = open();
  first.write(frameMessage(Buffer.alloc(1000)));
  await wait(50);
  t.equal(buffered.used, 1000, "the message in the handler is held");
  const second = open();
  // Only its prefix is sent: the budget is judged before the bytes are held.
  second.write(frameMessage(Buffer.alloc(1000)).subarray(0, 5));
  t.equal(await closed(second), http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, "reset: RESOURCE_EXHAUSTED");
  t.same(refusals, ["memory_budget"]);
  release();
  await wait(50);
  t.equal(buffered.used, 0, "handled: given back");
  const third = open();
  third.write(frameMessage(Buffer.alloc(100)).subarray(0, 50));
  await wait(50);
  t.equal(buffered.used, 100, "a message still arriving is held whole");
  third.close();
  await wait(50);
  t.equal(buffered.used, 0, "and given back when its stream closes");
});

t.test("a stream that sends nothing, and one open too long, end with DEADLINE_EXCEEDED", async (t) => {
  const { open, refusals } = await harness(
    t,
    (call) => call.onMessage(() => undefined),
    {
      maxQueuedBytes: 1024,
      maxConnectionQueuedBytes: 1024,
      idleTimeoutMs: 100,
      maxLifetimeMs: 400,
    },
    65_535,
  );
  const silent = grpcStatusOf(open());
  t.match(await silent, { status: "4", message: "nothing sent within 100 ms" });
  const talking = open();
  const ended = grpcStatusOf(talking);
  const ticker = setInterval(() => talking.write(frameMessage(Buffer.from("tick"))), 50);
  t.teardown(() => clearInterval(ticker));
  t.match(await ended, { status: "4", message: "the stream was open longer than 400 ms" }, "messages do not extend it");
  t.same(refusals, ["stream_idle", "stream_lifetime"]);
});

t.test("a peer's half-close: the time to the guard's status, or the peer's reset before it", async (t) => {
  const endings: unknown[] = [];
  const { open } = await harness(
    t,
    (call) => {
      call.onMessage(() => undefined);
      // One stream is answered 20 ms after its half-close; the other never is.
      call.onHalfClose(() => {
        if (endings.length === 0) setTimeout(() => call.finish(0), 20);
      });
    },
    {
      maxQueuedBytes: 1024,
      maxConnectionQueuedBytes: 1024,
      onHalfCloseEnded: (ending) => endings.push(ending),
    },
    65_535,
  );
  const answered = open();
  const status = grpcStatusOf(answered);
  answered.end(frameMessage(Buffer.from("last")));
  t.match(await status, { status: "0" });
  t.equal(endings.length, 1);
  const [first] = endings as { kind: string; seconds: number }[];
  t.ok(first?.kind === "answered" && first.seconds >= 0.015 && first.seconds < 1, `answered after ${first?.seconds} s`);

  const abandoned = open();
  abandoned.end();
  await wait(50);
  abandoned.close(http2.constants.NGHTTP2_CANCEL);
  await closed(abandoned);
  await wait(20);
  t.same(endings[1], { kind: "reset" }, "reset by the peer before any status (Envoy's remote-close timeout)");
});

t.test("ByteBudget: a memory budget is absolute, a queue takes one item of any size when empty", async (t) => {
  const memory = new ByteBudget(10);
  t.ok(memory.take(6));
  t.notOk(memory.take(5), "6 + 5 > 10");
  t.equal(memory.used, 6);
  memory.give(6);
  t.notOk(memory.take(11), "never more than the limit");
  const queue = new ByteBudget(10, { oneAlwaysFits: true });
  t.ok(queue.take(11), "an empty queue takes one large item");
  t.notOk(queue.take(1));
  queue.give(11);
  t.equal(queue.used, 0);
});

t.test(
  "BudgetShare: a holder's part, with a queue limit of its own, given back whole on close and never twice",
  async (t) => {
    const budget = new ByteBudget(10);
    const share = new BudgetShare(budget, 5);
    t.equal(share.take(6), undefined, "one draw fits an empty share");
    t.equal(share.take(1), "own");
    share.give(6);
    t.equal(share.take(4), undefined);
    const other = new BudgetShare(budget);
    t.equal(other.take(6), undefined);
    t.equal(other.take(1), "shared", "the shared budget is spent");
    share.close();
    t.equal(budget.used, 6);
    share.give(4);
    t.equal(budget.used, 6, "a give after close is ignored");
  },
);
