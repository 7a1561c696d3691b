// Http2ServerCall's backpressure and reply queues against a raw HTTP/2 client that controls its own
// flow-control window: a peer that stops reading must stop being read, and replies the server sends
// on its own are bounded per stream and per connection.
import * as http2 from "node:http2";
import t, { type Test } from "tap";
import { ByteBudget } from "../../../src/server/byte-budget.js";
import { type CallRefusal, Http2ServerCall, type ServerCall } from "../../../src/server/grpc-call.js";
import { frameMessage } from "../../../src/server/grpc-framing.js";

interface Harness {
  readonly session: http2.ClientHttp2Session;
  readonly connectionQueues: ByteBudget[];
  readonly refusals: CallRefusal[];
  open(): http2.ClientHttp2Stream;
}

/** A server whose every stream runs `handler` on an Http2ServerCall; the client starts with a window of `window`. */
async function harness(
  t: Test,
  handler: (call: ServerCall) => void,
  limits: { maxQueuedBytes: number; maxConnectionQueuedBytes: number },
  window: number,
): Promise<Harness> {
  const server = http2.createServer();
  const connectionQueues: ByteBudget[] = [];
  const refusals: CallRefusal[] = [];
  server.on("session", (session) => {
    const connectionQueue = new ByteBudget(limits.maxConnectionQueuedBytes, { oneAlwaysFits: true });
    connectionQueues.push(connectionQueue);
    session.on("stream", (stream: http2.ServerHttp2Stream) =>
      handler(
        new Http2ServerCall(stream, {
          maxMessageBytes: 1024 * 1024,
          maxQueuedBytes: limits.maxQueuedBytes,
          connectionQueue,
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
  // What went out before the window filled: the stream's 16 KiB high-water mark plus what
  // nghttp2 took ahead of the window (measured: ~620 replies of 105 bytes).
  t.ok(stalled < total / 10, `reading stopped after ${stalled} of ${total} messages`);
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
