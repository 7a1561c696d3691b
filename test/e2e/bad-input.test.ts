// Bad input through the real Envoy, and bad frame sequences straight at the guard's gRPC server.
// Each row has a documented outcome (docs/reliability.md, "Bad input"), a metric that counts it,
// and afterwards the guard is still alive and serving guarded requests.
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { connect } from "node:net";
import { gzipSync } from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import t, { type Test } from "tap";
import { metricSum } from "../../bench/metrics-text.js";
import type { Stack } from "../../src/devstack/stack.js";
import { externalProcessorService } from "../../src/extproc/proto.js";
import type { ProcessingRequest, ProcessingResponse } from "../../src/extproc/wire.js";
import { defaultConfigWith, stackFor } from "../helpers/e2e.js";
import { requestBody, requestHeaders, responseBody, responseHeaders } from "../helpers/frames.js";
import { chatShot, send } from "../helpers/load.js";

function guardOf(stack: Stack): NonNullable<Stack["guard"]> {
  if (stack.guard === undefined) throw new Error("stack without a guard");
  return stack.guard;
}

async function stillServing(t: Test, stack: Stack): Promise<void> {
  t.equal(guardOf(stack).process().exited(), false, "guard process alive");
  const answer = await send(stack.url, chatShot(7), 10_000);
  t.equal(answer.status, 200, "and serving");
  t.equal(answer.headers?.get("x-guard-route"), "chat", "guarded");
}

/** Raw HTTP/1.1, for requests fetch refuses to build; resolves with the status line's code. */
function rawStatus(port: number, head: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    let reply = "";
    socket.setTimeout(15_000, () => {
      socket.destroy();
      reject(new Error("no answer"));
    });
    // Envoy may close while a large request is still being written: the answer has arrived by then.
    socket.on("error", (error) => (/^HTTP\/1\.1 \d{3}/.test(reply) ? undefined : reject(error)));
    socket.on("close", () =>
      reject(new Error(`connection closed without an answer: ${JSON.stringify(reply.slice(0, 80))}`)),
    );
    socket.on("data", (chunk) => {
      reply += chunk.toString("latin1");
      const match = /^HTTP\/1\.1 (\d{3})/.exec(reply);
      if (match !== null) {
        socket.destroy();
        resolve(Number(match[1]));
      }
    });
    socket.on("connect", () => socket.write(head));
  });
}

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

async function post(
  stack: Stack,
  path: string,
  body: string | Buffer,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const response = await fetch(`${stack.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
    signal: AbortSignal.timeout(20_000),
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

t.test("bad request input through Envoy", async (t) => {
  // 1 MiB per-connection buffer (told to the guard too): "far over the limit" stays cheap to send.
  const bufferLimitBytes = 1024 * 1024;
  const base = await defaultConfigWith({});
  const stack = await stackFor(t, {
    failureModeAllow: false,
    bufferLimitBytes,
    // Debug logging: the most the guard ever logs, checked for secrets and prompts at the end.
    guardConfig: { ...base, envoy: { ...(base.envoy as object), bufferLimitBytes }, log: { level: "debug" } },
  });
  const guard = guardOf(stack);
  const rows: string[] = [];
  const row = (name: string, answer: { status: number | string; headers?: Headers | undefined }): void => {
    rows.push(`${name}: ${answer.status} ${answer.headers?.get("x-guard-reason") ?? ""}`.trim());
  };

  const malformed = await post(
    stack,
    "/v1/chat/completions",
    '{"model": "demo", "messages": [{"role": "user", "content": "cut',
  );
  row("truncated JSON", malformed);
  t.equal(malformed.status, 400, "truncated JSON reaches the model, which refuses it");
  t.equal(malformed.headers.get("x-guard-route"), "chat", "the guard processed it");

  const garbage = await post(stack, "/v1/chat/completions", "{not json at all]]");
  row("malformed JSON", garbage);
  t.equal(garbage.status, 400);

  const invalidUtf8 = Buffer.concat([
    Buffer.from('{"model":"demo","temperature":0,"messages":[{"role":"user","content":"'),
    Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0x80]),
    Buffer.from('"}]}'),
  ]);
  const utf8 = await post(stack, "/v1/chat/completions", invalidUtf8);
  row("invalid UTF-8 in a JSON string", utf8);
  t.equal(utf8.status, 200, "the model decodes it with replacement characters and answers");
  t.equal(utf8.headers.get("x-guard-route"), "chat");

  const deep = `{"model":"demo","temperature":0,"messages":${"[".repeat(100_000)}${"]".repeat(100_000)}}`;
  const nested = await post(stack, "/v1/chat/completions", deep);
  row("JSON nested 100 000 deep", nested);
  t.equal(nested.headers.get("x-guard-route"), "chat", "the guard processed it");
  t.equal(nested.status, 400, "passed on; the model refuses it");
  t.ok(nested.headers.get("x-demo-pool") !== null, "(the model's answer, not the guard's)");

  const protobuf = await post(stack, "/v1/chat/completions", randomBytes(2048), {
    "content-type": "application/x-protobuf",
  });
  row("unknown content type (binary)", protobuf);
  t.equal(protobuf.status, 400, "passed to the model, which refuses it");
  const text = await post(stack, "/v1/predict/sentiment", "just some words", {
    "content-type": "text/plain; charset=latin1",
  });
  row("unknown content type (text)", text);
  t.equal(text.status, 400);

  // Far over the 1 MiB buffer limit on a route whose body the guard buffers.
  // Raw socket: Envoy answers 413 while the client is still uploading, and stops reading.
  const port = Number(new URL(stack.url).port);
  const hugeBody = `{"model":"demo","messages":[{"role":"user","content":"${"x".repeat(4 * 1024 * 1024)}"}]}`;
  const huge = await rawStatus(
    port,
    `POST /v1/chat/completions HTTP/1.1\r\nhost: guard.test\r\ncontent-type: application/json\r\ncontent-length: ${hugeBody.length}\r\n\r\n${hugeBody}`,
  );
  rows.push(`body 4x the buffer limit: ${huge}`);
  t.equal(huge, 413, "refused at the headers: the guard would need a body Envoy cannot buffer");

  const manyHeaders = Array.from({ length: 10_000 }, (_, index) => `x-h${index}: ${index}\r\n`).join("");
  const tooMany = await rawStatus(
    port,
    `POST /v1/chat/completions HTTP/1.1\r\nhost: guard.test\r\ncontent-type: application/json\r\ncontent-length: 2\r\n${manyHeaders}\r\n{}`,
  );
  rows.push(`10 000 headers: ${tooMany}`);
  t.equal(tooMany, 431, "Envoy's header limits answer 431");

  const enormous = await rawStatus(
    port,
    `POST /v1/chat/completions HTTP/1.1\r\nhost: guard.test\r\ncontent-length: 2\r\nx-big: ${"v".repeat(200_000)}\r\n\r\n{}`,
  );
  rows.push(`200 KB header value: ${enormous}`);
  t.equal(enormous, 431, "over Envoy's 60 KiB header budget: 431");

  // Under Envoy's budget the guard sees it: a 4 KB credential (tenant hash) and a 2 KB request id.
  const big = await post(
    stack,
    "/v1/chat/completions",
    JSON.stringify({ model: "demo", temperature: 0, messages: [{ role: "user", content: "PROMPT-CANARY-7781" }] }),
    {
      authorization: `Bearer sk-CANARY-SECRET-${"k".repeat(4_000)}`,
      "x-request-id": "r".repeat(2_000),
    },
  );
  row("6 KB of header values", big);
  t.equal(big.status, 200);
  t.equal(big.headers.get("x-guard-route"), "chat");

  const after = await guard.metrics();
  t.match(
    after,
    /guard_complexity_estimate_fallbacks_total\{route="chat",reason="[a-z_]+"\} [1-9]/,
    "complexity fallbacks counted",
  );
  t.match(after, /guard_replies_total\{route="chat",reason="request.too_large",status="413"\} 1/, "the 413 is counted");
  t.ok(
    metricSum(after, "guard_stage_errors_total", { stage: "cache", phase: "request_body" }) === 0,
    "the deep body did not break the cache stage",
  );
  t.equal(metricSum(after, "guard_extproc_anomalies_total", { kind: "handler_error" }), 0, "no handler error");
  await stillServing(t, stack);
  const logs = guard.process().output();
  t.ok(logs.length > 0, `the guard logged (${logs.length} bytes at debug)`);
  t.notMatch(logs, /CANARY-SECRET|Bearer/, "no Authorization value in the logs");
  t.notMatch(logs, /PROMPT-CANARY|summarise the incident report|"messages"/, "no prompt or body in the logs");
  t.comment(
    `bad input outcomes:\n${rows.join("\n")}\n${after
      .split("\n")
      .filter((line) =>
        /^guard_(complexity_estimate_fallbacks|stage_errors|cache_bypass|extproc_anomalies|extproc_streams)_total/.test(
          line,
        ),
      )
      .join("\n")}`,
  );
});

t.test("a decompression bomb from the upstream is stopped at the contract's limit", async (t) => {
  const stack = await stackFor(t, { failureModeAllow: false });
  // Replace the light pool with an upstream that answers with 64 MiB of JSON gzipped to ~64 KB.
  const port = Number(new URL(stack.light.url).port);
  await stack.light.process?.stop();
  const bomb = gzipSync(
    Buffer.concat([Buffer.from('{"label":"POSITIVE","score":0.9}'), Buffer.alloc(64 * 1024 * 1024, 0x20)]),
    { level: 9 },
  );
  const upstream: Server = createServer((request, response) => {
    request.resume();
    request.on("end", () => {
      response.writeHead(200, {
        "content-type": "application/json",
        "content-encoding": "gzip",
        "content-length": bomb.length,
        "x-model-version": "v1",
      });
      response.end(bomb);
    });
  });
  await new Promise<void>((resolve) => upstream.listen(port, "127.0.0.1", resolve));
  t.teardown(() => new Promise<void>((resolve) => upstream.close(() => resolve())));

  const answer = await post(stack, "/v1/predict/sentiment", JSON.stringify({ text: "fine" }));
  t.equal(answer.status, 502, "enforced contract: an uncheckable body does not reach the client");
  t.equal(answer.headers.get("x-guard-reason"), "contract.unverifiable");
  t.match(answer.headers.get("x-guard-contract"), /body\.decompression_limit/);
  t.ok(answer.text.length < 4_096, "a small problem+json answer instead of the bomb");
  t.equal(answer.headers.get("content-type"), "application/problem+json", "not an OpenAI endpoint: problem details");
  t.match(JSON.parse(answer.text), {
    type: "urn:inference-guard:problem:contract-unverifiable",
    status: 502,
    code: "contract.unverifiable",
    contract: "demo.v1.Sentiment",
    reason: "body.decompression_limit",
  });
  t.match(
    await guardOf(stack).metrics(),
    /guard_contract_unverifiable_total\{contract="demo.v1.Sentiment",reason="body.decompression_limit"\} 1/,
  );
  t.equal(guardOf(stack).process().exited(), false, "guard alive");
  t.comment(
    `decompression bomb (${bomb.length} B gzip → 64 MiB): ${answer.status} ${answer.headers.get("x-guard-contract")}`,
  );
});

type Call = grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>;

function openStream(address: string): {
  call: Call;
  answers: ProcessingResponse[];
  next(): Promise<ProcessingResponse>;
  ended: Promise<void>;
} {
  const Client = grpc.makeGenericClientConstructor(externalProcessorService(), "ExternalProcessor");
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as {
    Process(): Call;
    close(): void;
  };
  const call = client.Process();
  const answers: ProcessingResponse[] = [];
  const waiting: ((answer: ProcessingResponse) => void)[] = [];
  call.on("data", (answer: ProcessingResponse) => {
    const resolve = waiting.shift();
    if (resolve === undefined) answers.push(answer);
    else resolve(answer);
  });
  const ended = new Promise<void>((resolve) => {
    call.on("status", () => resolve());
    call.on("error", () => resolve());
  });
  void ended.then(() => client.close());
  return {
    call,
    answers,
    next: () => {
      const queued = answers.shift();
      if (queued !== undefined) return Promise.resolve(queued);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no answer from the guard")), 5_000);
        waiting.push((answer) => {
          clearTimeout(timer);
          resolve(answer);
        });
      });
    },
    ended,
  };
}

t.test("frames out of order or repeated, straight at the guard's gRPC server", async (t) => {
  const stack = await stackFor(t);
  const guard = guardOf(stack);
  const address = guard.address;

  const bodyFirst = openStream(address);
  bodyFirst.call.write(responseBody('{"x":1}'));
  t.equal(
    (await bodyFirst.next()).responseBody?.response.status,
    "CONTINUE",
    "a body before any headers: answered continue",
  );
  bodyFirst.call.write(responseHeaders(200));
  t.equal(
    (await bodyFirst.next()).responseHeaders?.response.status,
    "CONTINUE",
    "response headers before request headers: continue",
  );
  bodyFirst.call.end();
  await bodyFirst.ended;

  const twice = openStream(address);
  twice.call.write(requestHeaders({ ":path": "/v1/chat/completions" }));
  const first = await twice.next();
  t.equal(first.requestHeaders?.response.status, "CONTINUE");
  t.equal(first.modeOverride?.requestBodyMode, "BUFFERED", "the chat route asks for the body");
  twice.call.write(requestHeaders({ ":path": "/v1/chat/completions" }));
  t.ok((await twice.next()).requestHeaders !== undefined, "repeated request headers: continue");
  twice.call.write({});
  t.equal(
    (await twice.next()).requestBody?.response.status,
    "CONTINUE",
    "an empty frame gets a continue for the phase awaited (the body), so Envoy never waits for its timeout",
  );
  twice.call.write({ request: "requestTrailers", requestTrailers: {} });
  t.ok((await twice.next()).requestTrailers !== undefined, "trailers pass");
  twice.call.write(requestBody('{"model":"demo","messages":[]}', true));
  t.ok((await twice.next()).requestBody !== undefined, "the body is still answered");
  twice.call.write(requestBody('{"model":"demo","messages":[]}', true));
  t.ok((await twice.next()).requestBody !== undefined, "a repeated end-of-stream body: continue");
  const status = new Promise<number>((resolve) =>
    twice.call.on("status", (result: grpc.StatusObject) => resolve(result.code)),
  );
  twice.call.write(responseHeaders(200, { "content-type": "application/json" }));
  t.ok((await twice.next()).responseHeaders !== undefined);
  twice.call.write(responseBody('{"choices":[]}', true));
  t.ok((await twice.next()).responseBody !== undefined);
  t.equal(await status, grpc.status.OK, "the guard ends the stream with OK once the exchange is complete");
  twice.call.end();
  await twice.ended;

  const cancelled = openStream(address);
  cancelled.call.write(requestHeaders({ ":path": "/v1/predict/sentiment" }));
  await cancelled.next();
  cancelled.call.cancel();
  await cancelled.ended;

  // Bytes that are no ext_proc message at all: refused at decoding with INTERNAL, the process stays up.
  const raw = new grpc.Client(address, grpc.credentials.createInsecure());
  const garbage = raw.makeBidiStreamRequest<Buffer, Buffer>(
    "/envoy.service.ext_proc.v3.ExternalProcessor/Process",
    (bytes) => bytes,
    (bytes) => bytes,
  );
  const garbageStatus = new Promise<number>((resolve) =>
    garbage.on("status", (status: grpc.StatusObject) => resolve(status.code)),
  );
  garbage.on("error", () => {});
  garbage.on("data", () => {});
  garbage.write(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02]));
  garbage.write(randomBytes(512));
  garbage.end();
  const code = await garbageStatus;
  raw.close();
  t.not(code, grpc.status.OK, `undecodable bytes end that stream with a gRPC error (${grpc.status[code]})`);

  await new Promise((resolve) => setTimeout(resolve, 200));
  const metrics = await guard.metrics();
  t.ok(
    metricSum(metrics, "guard_extproc_anomalies_total", { kind: "unexpected_order" }) >= 2,
    "out-of-order frames counted",
  );
  t.ok(
    metricSum(metrics, "guard_extproc_anomalies_total", { kind: "duplicate_body" }) >= 2,
    "repeated end-of-stream bodies counted",
  );
  t.ok(metricSum(metrics, "guard_extproc_anomalies_total", { kind: "unknown_frame" }) >= 1, "empty frame counted");
  t.ok(
    metricSum(metrics, "guard_extproc_anomalies_total", { kind: "cancelled_mid_request" }) >= 1,
    "cancellation counted",
  );
  t.equal(metricSum(metrics, "guard_extproc_active_streams"), 0, "no stream left open");

  const fresh = openStream(address);
  fresh.call.write(requestHeaders({ ":path": "/v1/chat/completions" }));
  t.equal(
    (await fresh.next()).requestHeaders?.response.status,
    "CONTINUE",
    "a well-formed stream is served afterwards",
  );
  fresh.call.end();
  await fresh.ended;
  await stillServing(t, stack);
});
