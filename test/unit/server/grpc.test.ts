// The guard's gRPC server against a standard client (grpc-js): ext_proc streams, grpc.health.v1,
// protocol errors and the drain, all on one loopback port.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { pino } from "pino";
import t, { type Test } from "tap";
import { configSchema } from "../../../src/config/schema.js";
import { externalProcessorService } from "../../../src/extproc/proto.js";
import type { ProcessingRequest, ProcessingResponse } from "../../../src/extproc/wire.js";
import { createCoreMetrics } from "../../../src/metrics/registry.js";
import { Pipeline } from "../../../src/pipeline/pipeline.js";
import { EXT_PROC_SERVICE, type GrpcServer, type ServerLimits, startGrpcServer } from "../../../src/server/grpc.js";
import { HEALTH_PROTO } from "../../../src/server/health.js";
import { requestHeaders, responseHeaders, route } from "../../helpers/frames.js";
import { registryValue } from "../../helpers/registry-metrics.js";

async function startServer(
  t: Test,
  limits: Partial<ServerLimits> = {},
): Promise<{ server: GrpcServer; metrics: ReturnType<typeof createCoreMetrics> }> {
  const metrics = createCoreMetrics("test");
  const log = pino({ level: "silent" });
  const now = (): number => performance.now();
  const pipeline = new Pipeline([route("test")], [], { metrics, log, now });
  const server = await startGrpcServer(
    "127.0.0.1:0",
    "660",
    { pipeline: () => pipeline, metrics, log, now },
    { ...configSchema.parse({}).limits, ...limits },
  );
  t.teardown(() => server.drain(0));
  return { server, metrics };
}

type Duplex = grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>;

function processClient(address: string): { open(): Duplex; close(): void } {
  const Client = grpc.makeGenericClientConstructor(externalProcessorService(), "ExternalProcessor");
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as {
    Process(): Duplex;
    close(): void;
  };
  return { open: () => client.Process(), close: () => client.close() };
}

function statusOf(call: {
  on(event: "status", listener: (status: grpc.StatusObject) => void): unknown;
  on(event: "error", listener: () => void): unknown;
}): Promise<grpc.StatusObject> {
  return new Promise((resolve) => {
    call.on("error", () => undefined);
    call.on("status", resolve);
  });
}

function healthClient(address: string): grpc.Client & Record<string, (...args: unknown[]) => unknown> {
  const definition = protoLoader.loadSync(HEALTH_PROTO, { enums: String });
  const Health = grpc.makeGenericClientConstructor(
    definition["grpc.health.v1.Health"] as grpc.ServiceDefinition,
    "Health",
  );
  return new Health(address, grpc.credentials.createInsecure()) as unknown as grpc.Client &
    Record<string, (...args: unknown[]) => unknown>;
}

function check(
  client: grpc.Client & Record<string, (...args: unknown[]) => unknown>,
  service: string,
): Promise<{ status?: string; code?: number }> {
  return new Promise((resolve) => {
    client.check?.({ service }, (error: grpc.ServiceError | null, response: { status: string }) =>
      resolve(error === null ? { status: response.status } : { code: error.code }),
    );
  });
}

t.test("an ext_proc exchange: answers in order, then OK once the exchange is complete", async (t) => {
  const { server, metrics } = await startServer(t);
  const client = processClient(server.address);
  t.teardown(() => client.close());
  const call = client.open();
  const answers: ProcessingResponse[] = [];
  call.on("data", (answer: ProcessingResponse) => answers.push(answer));
  const status = statusOf(call);
  call.write(requestHeaders({ ":path": "/v1/chat/completions" }));
  call.write(responseHeaders(200));
  const ended = await status;
  t.equal(ended.code, grpc.status.OK);
  t.same(
    answers.map((answer) => (answer as { response?: string }).response),
    ["requestHeaders"],
    "request headers answered; the exchange needed nothing more, so the stream ended before the response phase",
  );
  t.equal(await registryValue(metrics.registry, "guard_extproc_active_streams"), 0, "no stream left open");
});

t.test("many concurrent streams on one connection", async (t) => {
  const { server } = await startServer(t);
  const client = processClient(server.address);
  t.teardown(() => client.close());
  const codes = await Promise.all(
    Array.from({ length: 200 }, async () => {
      const call = client.open();
      call.on("data", () => undefined);
      const status = statusOf(call);
      call.write(requestHeaders({}));
      call.end();
      return (await status).code;
    }),
  );
  t.ok(
    codes.every((code) => code === grpc.status.OK),
    "all 200 streams ended OK",
  );
  t.equal(server.activeStreams(), 0);
});

t.test("undecodable bytes end the stream with INTERNAL and are counted", async (t) => {
  const { server, metrics } = await startServer(t);
  const raw = new grpc.Client(server.address, grpc.credentials.createInsecure());
  t.teardown(() => raw.close());
  const call = raw.makeBidiStreamRequest<Buffer, Buffer>(
    `/${EXT_PROC_SERVICE}/Process`,
    (bytes) => bytes,
    (bytes) => bytes,
  );
  const status = statusOf(call);
  call.write(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02]));
  call.end();
  t.equal((await status).code, grpc.status.INTERNAL);
  t.equal(await registryValue(metrics.registry, "guard_extproc_anomalies_total", { kind: "undecodable_frame" }), 1);
});

t.test("an unknown method is UNIMPLEMENTED", async (t) => {
  const { server } = await startServer(t);
  const raw = new grpc.Client(server.address, grpc.credentials.createInsecure());
  t.teardown(() => raw.close());
  const code = await new Promise<number>((resolve) => {
    raw.makeUnaryRequest(
      "/no.such.Service/Method",
      (bytes: Buffer) => bytes,
      (bytes: Buffer) => bytes,
      Buffer.alloc(0),
      (error) => resolve(error?.code ?? grpc.status.OK),
    );
  });
  t.equal(code, grpc.status.UNIMPLEMENTED);
});

t.test("a message over limits.maxMessageBytes is refused with RESOURCE_EXHAUSTED before it is read", async (t) => {
  const { server } = await startServer(t);
  // One byte over the default 16 MiB: the prefix alone decides.
  const prefix = Buffer.from([0, 0, 0, 0, 0]);
  prefix.writeUInt32BE(16 * 1024 * 1024 + 1, 1);
  const answer = await rawCall(t, server.address, { ":method": "POST", "content-type": "application/grpc" }, prefix);
  t.equal(answer.grpcStatus, String(grpc.status.RESOURCE_EXHAUSTED));
  t.match(decodeURIComponent(String(answer.grpcMessage)), /exceeds the 16777216-byte limit/);
});

t.test("a peer still sending a refused message is answered, then asked to stop sending it", async (t) => {
  const { server } = await startServer(t);
  const { connect, constants } = await import("node:http2");
  const session = connect(`http://${server.address}`);
  t.teardown(() => session.close());
  const stream = session.request({
    ":method": "POST",
    ":path": `/${EXT_PROC_SERVICE}/Process`,
    "content-type": "application/grpc",
  });
  stream.on("error", () => undefined);
  let grpcStatus: unknown;
  stream.on("response", (headers) => (grpcStatus = headers["grpc-status"]));
  const size = 32 * 1024 * 1024;
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(size, 1);
  stream.write(prefix);
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  let sent = 0;
  const closed = new Promise((resolve) => stream.once("close", resolve));
  while (sent < size && !stream.closed) {
    if (!stream.write(chunk)) await Promise.race([new Promise((resolve) => stream.once("drain", resolve)), closed]);
    sent += chunk.length;
  }
  await closed;
  t.equal(grpcStatus, String(grpc.status.RESOURCE_EXHAUSTED), "the status first");
  t.equal(stream.rstCode, constants.NGHTTP2_NO_ERROR, "then RST_STREAM(NO_ERROR)");
  t.ok(sent < 8 * 1024 * 1024, `the peer stopped after ${sent / 1024 / 1024} of 32 MiB`);
});

t.test("a non-gRPC request gets HTTP 415", async (t) => {
  const { server } = await startServer(t);
  const answer = await rawCall(t, server.address, { ":method": "POST", "content-type": "application/json" });
  t.equal(answer.status, 415);
});

/** A raw HTTP/2 request to the server: its HTTP status, its gRPC status (headers or trailers) and the data it got. */
async function rawCall(
  t: Test,
  address: string,
  headers: Record<string, string>,
  body?: Buffer,
): Promise<{ status: unknown; grpcStatus: unknown; grpcMessage: unknown; data: Buffer }> {
  const { connect } = await import("node:http2");
  const session = connect(`http://${address}`);
  t.teardown(() => session.close());
  const stream = session.request({ ":path": `/${EXT_PROC_SERVICE}/Process`, te: "trailers", ...headers });
  stream.on("error", () => undefined);
  let status: unknown;
  let grpcStatus: unknown;
  let grpcMessage: unknown;
  const data: Buffer[] = [];
  stream.on("response", (received) => {
    status = received[":status"];
    grpcStatus = received["grpc-status"];
    grpcMessage = received["grpc-message"];
  });
  stream.on("trailers", (received) => {
    grpcStatus = received["grpc-status"];
    grpcMessage = received["grpc-message"];
  });
  stream.on("data", (chunk: Buffer) => data.push(chunk));
  stream.end(body);
  await new Promise((resolve) => stream.on("close", resolve));
  return { status, grpcStatus, grpcMessage, data: Buffer.concat(data) };
}

t.test("only POST is a gRPC call: other methods get HTTP 405", async (t) => {
  const { server } = await startServer(t);
  for (const method of ["GET", "PUT"]) {
    const answer = await rawCall(t, server.address, { ":method": method, "content-type": "application/grpc" });
    t.equal(answer.status, 405, method);
  }
});

t.test("content subtypes: proto is served, any other encoding is UNIMPLEMENTED", async (t) => {
  const { server } = await startServer(t);
  // ProcessingRequest{request_trailers: {}}, framed: answered with a continue, then the half-close ends it.
  const trailersFrame = Buffer.from([0, 0, 0, 0, 2, 0x32, 0x00]);
  for (const contentType of ["application/grpc", "application/grpc+proto", "application/GRPC+Proto; charset=x"]) {
    const answer = await rawCall(t, server.address, { ":method": "POST", "content-type": contentType }, trailersFrame);
    t.equal(answer.grpcStatus, String(grpc.status.OK), `${contentType}: OK`);
    t.ok(answer.data.length > 5, `${contentType}: answered`);
  }
  for (const contentType of ["application/grpc+json", "application/grpc+xml;a=b"]) {
    const answer = await rawCall(t, server.address, { ":method": "POST", "content-type": contentType }, trailersFrame);
    t.equal(answer.grpcStatus, String(grpc.status.UNIMPLEMENTED), `${contentType}: UNIMPLEMENTED`);
    t.equal(answer.data.length, 0, `${contentType}: nothing read as protobuf`);
  }
  const web = await rawCall(t, server.address, { ":method": "POST", "content-type": "application/grpc-web" });
  t.equal(web.status, 415, "gRPC-Web is not gRPC");
});

t.test("an empty ProcessingRequest is answered with a continue, so Envoy never waits for its timeout", async (t) => {
  const { server, metrics } = await startServer(t);
  const client = processClient(server.address);
  t.teardown(() => client.close());
  const call = client.open();
  const answer = new Promise<ProcessingResponse>((resolve) => call.once("data", resolve));
  const status = statusOf(call);
  call.write({});
  t.same(await answer, { requestHeaders: { response: { status: "CONTINUE" } }, response: "requestHeaders" });
  call.end();
  t.equal((await status).code, grpc.status.OK);
  t.equal(await registryValue(metrics.registry, "guard_extproc_anomalies_total", { kind: "unknown_frame" }), 1);
});

t.test(
  "limits: streams beyond maxStreams, and new exchanges while the heap is overloaded, get RESOURCE_EXHAUSTED",
  async (t) => {
    const { server, metrics } = await startServer(t, { maxStreams: 1 });
    const { connect } = await import("node:http2");
    const session = connect(`http://${server.address}`);
    t.teardown(() => session.close());
    // Open, silent: it holds its place among the streams.
    const held = session.request({
      ":method": "POST",
      ":path": `/${EXT_PROC_SERVICE}/Process`,
      "content-type": "application/grpc",
    });
    held.on("error", () => undefined);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const refused = await rawCall(t, server.address, { ":method": "POST", "content-type": "application/grpc" });
    t.equal(refused.grpcStatus, String(grpc.status.RESOURCE_EXHAUSTED), "the second stream");
    held.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const taken = await rawCall(t, server.address, { ":method": "POST", "content-type": "application/grpc" });
    t.equal(taken.grpcStatus, String(grpc.status.OK), "once the first closed, a stream is taken again");
    t.equal(await registryValue(metrics.registry, "guard_grpc_refusals_total", { reason: "max_streams" }), 1);
    t.equal(
      await registryValue(metrics.registry, "guard_grpc_limit", { limit: "maxStreams" }),
      1,
      "the limit is exported",
    );

    const overloaded = await startServer(t, { overloadHeapRatio: 0.000_001 });
    const shed = await rawCall(t, overloaded.server.address, { ":method": "POST", "content-type": "application/grpc" });
    t.equal(shed.grpcStatus, String(grpc.status.RESOURCE_EXHAUSTED), "ext_proc refused under heap overload");
    const client = healthClient(overloaded.server.address);
    t.teardown(() => client.close());
    t.same(await check(client, ""), { status: "SERVING" }, "health checks still answered");
    t.equal(
      await registryValue(overloaded.metrics.registry, "guard_grpc_refusals_total", { reason: "heap_overload" }),
      1,
    );
    t.ok(((await registryValue(overloaded.metrics.registry, "guard_grpc_heap_used_ratio")) ?? 0) > 0);
  },
);

t.test("limits: a connection without an HTTP/2 preface is closed; connections beyond maxConnections too", async (t) => {
  const { server, metrics } = await startServer(t, { prefaceTimeoutMs: 100, maxConnections: 2 });
  const { connect } = await import("node:net");
  const [host, port] = [
    server.address.slice(0, server.address.lastIndexOf(":")),
    Number(server.address.split(":").pop()),
  ];
  const open = (): { closedAfter: Promise<number> } => {
    const started = performance.now();
    // Flowing, so the server's FIN is read and the socket closes.
    const socket = connect({ host, port }).resume();
    socket.on("error", () => undefined);
    return { closedAfter: new Promise((resolve) => socket.on("close", () => resolve(performance.now() - started))) };
  };
  const silent = open();
  const second = open();
  await new Promise((resolve) => setTimeout(resolve, 30));
  const third = open();
  t.ok((await third.closedAfter) < 90, "the third connection is closed at once");
  t.ok((await silent.closedAfter) >= 90, "the silent ones after their preface timeout");
  await second.closedAfter;
  t.equal(await registryValue(metrics.registry, "guard_grpc_refusals_total", { reason: "max_connections" }), 1);
  t.equal(await registryValue(metrics.registry, "guard_grpc_refusals_total", { reason: "preface_timeout" }), 2);
  t.equal(await registryValue(metrics.registry, "guard_grpc_connections"), 0);
});

t.test("grpc.health.v1: Check for the server and ext_proc, NOT_FOUND for others, follows setServing", async (t) => {
  const { server } = await startServer(t);
  const client = healthClient(server.address);
  t.teardown(() => client.close());
  t.same(await check(client, ""), { status: "SERVING" });
  t.same(await check(client, EXT_PROC_SERVICE), { status: "SERVING" });
  t.same(await check(client, "no.such.Service"), { code: grpc.status.NOT_FOUND });
  server.setServing(false);
  t.same(await check(client, EXT_PROC_SERVICE), { status: "NOT_SERVING" });
});

t.test("grpc.health.v1 Watch sends the current status and every change", async (t) => {
  const { server } = await startServer(t);
  const client = healthClient(server.address);
  t.teardown(() => client.close());
  const watch = client.watch?.({ service: EXT_PROC_SERVICE }) as grpc.ClientReadableStream<{ status: string }>;
  const seen: string[] = [];
  const two = new Promise<void>((resolve) =>
    watch.on("data", (message: { status: string }) => {
      seen.push(message.status);
      if (seen.length === 1) server.setServing(false);
      if (seen.length === 2) resolve();
    }),
  );
  watch.on("error", () => undefined);
  await two;
  t.same(seen, ["SERVING", "NOT_SERVING"]);
  watch.cancel();
});

t.test("drain lets an open stream finish, then resolves unforced", async (t) => {
  const { server } = await startServer(t);
  const client = processClient(server.address);
  t.teardown(() => client.close());
  const call = client.open();
  const first = new Promise<ProcessingResponse>((resolve) => call.once("data", resolve));
  const status = statusOf(call);
  // A body is asked for only by stages; with none, the request-headers answer ends the exchange
  // unless the response phase is still to come, so hold the stream open with an unanswered frame order.
  call.write(requestHeaders({}));
  await first;
  const drained = server.drain(5_000);
  call.end();
  t.equal((await status).code, grpc.status.OK, "the open stream ended normally");
  t.same(await drained, { forced: false });
});

t.test("drain with a deadline cuts streams still open", async (t) => {
  const { server } = await startServer(t);
  const raw = new grpc.Client(server.address, grpc.credentials.createInsecure());
  t.teardown(() => raw.close());
  // A stream that never sends a message stays open until the drain cuts it.
  const call = raw.makeBidiStreamRequest<Buffer, Buffer>(
    `/${EXT_PROC_SERVICE}/Process`,
    (bytes) => bytes,
    (bytes) => bytes,
  );
  const status = statusOf(call);
  call.write(Buffer.alloc(0));
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.same(await server.drain(200), { forced: true });
  t.not((await status).code, grpc.status.OK, "the client sees the stream fail");
});
