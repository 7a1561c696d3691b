import t from "tap";
import { parseConfig } from "../../../src/config/load.js";
import type { ProcessingResponse } from "../../../src/extproc/wire.js";
import { createAnnotateStage } from "../../../src/pipeline/annotate/stage.js";
import type { ChunkStep, Outcome, Stage, StageRun } from "../../../src/pipeline/types.js";
import {
  counterValue,
  harness,
  requestBody,
  requestHeaders,
  responseBody,
  responseHeaders,
  route,
  setHeadersOf,
} from "../../helpers/frames.js";

/** A stage built from hooks, recording the outcome it is told about. */
function stage(run: StageRun, outcomes: Outcome[] = []): Stage {
  return {
    name: "probe",
    start: () => ({ ...run, onEnd: (outcome) => outcomes.push(outcome) }),
  };
}

t.test("a request no route matches passes through and asks for nothing more", async (t) => {
  const h = harness([stage({})], [route("chat", "/v1/chat")]);
  const out = await h.feed(requestHeaders({ ":path": "/health" }, true));
  t.equal(out.length, 1);
  t.same(out[0]?.requestHeaders?.response, { status: "CONTINUE" });
  t.equal(out[0]?.modeOverride?.responseHeaderMode, "SKIP");
  t.equal(out[0]?.modeOverride?.requestBodyMode, "NONE");
  t.equal(h.processor.state, "done");
});

t.test("annotate: the upstream and the client both learn the route", async (t) => {
  const config = parseConfig("routes: [{ name: chat }]");
  if (!config.ok) throw new Error("config");
  const h = harness([createAnnotateStage(config.config.annotate)], [route("chat")]);
  const [first] = await h.feed(requestHeaders({}));
  t.same(setHeadersOf(first), { "x-guard-route": "chat" });
  t.equal(first?.modeOverride?.responseHeaderMode, "SEND", "response headers requested");
  t.equal(first?.modeOverride?.requestBodyMode, "NONE", "no body buffering for headers-only work");
  const [second] = await h.feed(responseHeaders(200));
  t.same(setHeadersOf(second), { "x-guard-route": "chat" });
  t.equal(second?.modeOverride, undefined, "no mode change on the response path");
  t.equal(h.processor.state, "done");
  t.equal(
    await counterValue(h.metrics, "guard_requests_total", {
      route: "chat",
      answered_by: "upstream",
      code_class: "2xx",
    }),
    1,
  );
});

t.test("a stage that needs the request body gets it whole, and may re-route", async (t) => {
  const seen: string[] = [];
  const outcomes: Outcome[] = [];
  const h = harness([
    stage(
      {
        onRequestHeaders: () => ({ type: "continue", needs: { requestBody: true, responseHeaders: true } }),
        onRequestBody: (body) => {
          seen.push(new TextDecoder().decode(body));
          return {
            type: "continue",
            edits: {
              setHeaders: { "x-guard-tier": "heavy" },
              clearRouteCache: true,
              metadata: { tier: "heavy", cost: 42 },
            },
          };
        },
        onResponseHeaders: () => ({
          type: "continue",
          edits: { setHeaders: { "x-seen": "1" }, clearRouteCache: true },
        }),
      },
      outcomes,
    ),
  ]);
  const [headersAnswer] = await h.feed(requestHeaders({}));
  t.equal(headersAnswer?.modeOverride?.requestBodyMode, "BUFFERED");
  const [bodyAnswer] = await h.feed(requestBody('{"messages":[]}'));
  t.same(seen, ['{"messages":[]}']);
  t.same(setHeadersOf(bodyAnswer), { "x-guard-tier": "heavy" });
  t.equal(bodyAnswer?.requestBody?.response.clearRouteCache, true);
  t.same(bodyAnswer?.dynamicMetadata, {
    fields: {
      inference_guard: { structValue: { fields: { tier: { stringValue: "heavy" }, cost: { numberValue: 42 } } } },
    },
  });
  const [responseAnswer] = await h.feed(responseHeaders(200));
  t.equal(
    responseAnswer?.responseHeaders?.response.clearRouteCache,
    undefined,
    "route cache is never cleared on the response path",
  );
  t.equal(outcomes.length, 1);
  t.equal(outcomes[0]?.answeredBy, "upstream");
  t.equal(outcomes[0]?.status, 200);
  // The harness clock advances 5 ms a read: the release, the ask for the response headers, their arrival.
  t.equal(outcomes[0]?.upstreamLatencyMs, 10, "time from releasing the request to its response headers");
});

t.test("a body-less request never waits for a body", async (t) => {
  const h = harness([
    stage({ onRequestHeaders: () => ({ type: "continue", needs: { requestBody: true, responseHeaders: true } }) }),
  ]);
  await h.feed(requestHeaders({ ":method": "GET" }, true));
  t.equal(h.processor.state, "response_headers");
});

t.test("an immediate reply carries status, headers, reason and body, and ends the exchange", async (t) => {
  const outcomes: Outcome[] = [];
  const h = harness([
    stage(
      {
        onRequestHeaders: () => ({
          type: "reply",
          reply: {
            status: 429,
            headers: { "retry-after": "2", "content-type": "application/json" },
            body: '{"error":"overloaded"}',
            reason: "shed.overload",
          },
        }),
      },
      outcomes,
    ),
  ]);
  const [answer] = await h.feed(requestHeaders({}));
  const immediate = answer?.immediateResponse;
  t.equal(immediate?.status.code, 429);
  t.equal(new TextDecoder().decode(immediate?.body), '{"error":"overloaded"}');
  const headers = Object.fromEntries(
    (immediate?.headers?.setHeaders ?? []).map((o) => [o.header.key, new TextDecoder().decode(o.header.rawValue)]),
  );
  t.same(headers, { "retry-after": "2", "content-type": "application/json", "x-guard-reason": "shed.overload" });
  t.equal(h.processor.state, "done");
  t.same(outcomes, [{ answeredBy: "guard", status: 429, reason: "shed.overload", cancelled: false }]);
  t.equal(
    await counterValue(h.metrics, "guard_replies_total", { route: "test", reason: "shed.overload", status: "429" }),
    1,
  );
});

t.test("a reply from the response body replaces the upstream's answer", async (t) => {
  const h = harness([
    stage({
      onRequestHeaders: () => ({ type: "continue", needs: { responseBody: true } }),
      onResponseBody: () => ({
        type: "reply",
        reply: { status: 502, headers: {}, body: "{}", reason: "contract.violated" },
      }),
    }),
  ]);
  const [first] = await h.feed(requestHeaders({}, true));
  t.equal(first?.modeOverride?.responseHeaderMode, "SEND");
  t.equal(first?.modeOverride?.responseBodyMode, "NONE", "the body is asked for at the response headers");
  const [headers] = await h.feed(responseHeaders(200));
  t.equal(headers?.modeOverride?.responseBodyMode, "BUFFERED");
  const [answer] = await h.feed(responseBody('{"score": 93}'));
  t.equal(answer?.immediateResponse?.status.code, 502);
});

t.test("a response body asked for at response headers switches the mode then", async (t) => {
  const h = harness([
    stage({
      onRequestHeaders: () => ({ type: "continue", needs: { responseHeaders: true } }),
      onResponseHeaders: () => ({ type: "continue", needs: { responseBody: true } }),
    }),
  ]);
  await h.feed(requestHeaders({}, true));
  const [answer] = await h.feed(responseHeaders(200));
  t.equal(answer?.modeOverride?.responseBodyMode, "BUFFERED");
  t.equal(h.processor.state, "response_body");
});

t.test("a duplicate end-of-stream body chunk (envoy#46237) is answered and counted", async (t) => {
  const h = harness([stage({ onRequestHeaders: () => ({ type: "continue", needs: { requestBody: true } }) })]);
  await h.feed(requestHeaders({}), requestBody("{}"));
  const [again] = await h.feed(requestBody("", true));
  t.same(again, { requestBody: { response: { status: "CONTINUE" } } });
  t.equal(await counterValue(h.metrics, "guard_extproc_anomalies_total", { kind: "duplicate_body" }), 1);
});

t.test("frames out of order get a neutral answer and are counted", async (t) => {
  const h = harness([stage({})]);
  const out = await h.feed(responseHeaders(200), requestBody("x", false), responseBody("y"));
  t.same(out, [
    { responseHeaders: { response: { status: "CONTINUE" } } },
    { requestBody: { response: { status: "CONTINUE" } } },
    { responseBody: { response: { status: "CONTINUE" } } },
  ]);
  t.equal(await counterValue(h.metrics, "guard_extproc_anomalies_total", { kind: "unexpected_order" }), 2);
  t.equal(await counterValue(h.metrics, "guard_extproc_anomalies_total", { kind: "duplicate_body" }), 1);
  await h.feed(requestHeaders({}, true));
  const [dup] = await h.feed(requestHeaders({}, true));
  t.same(dup, { requestHeaders: { response: { status: "CONTINUE" } } }, "second request headers is answered neutrally");
});

t.test("response headers while a request body is awaited (Envoy answered locally)", async (t) => {
  const outcomes: Outcome[] = [];
  const h = harness([
    stage(
      { onRequestHeaders: () => ({ type: "continue", needs: { requestBody: true, responseHeaders: true } }) },
      outcomes,
    ),
  ]);
  await h.feed(requestHeaders({}));
  const [answer] = await h.feed(responseHeaders(413));
  t.same(answer?.responseHeaders?.response, { status: "CONTINUE" });
  t.equal(outcomes[0]?.status, 413);
});

t.test("observability mode: nothing is sent back", async (t) => {
  const h = harness([
    stage({
      onRequestHeaders: () => ({
        type: "reply",
        reply: { status: 500, headers: {}, body: "", reason: "shed.circuit_open" },
      }),
    }),
  ]);
  const out = await h.feed(
    { ...requestHeaders({}), observabilityMode: true },
    { ...responseHeaders(200), observabilityMode: true },
  );
  t.same(out, []);
  t.equal(await counterValue(h.metrics, "guard_extproc_anomalies_total", { kind: "observability_mode" }), 1);
});

t.test("a stream cancelled mid-request ends the exchange as cancelled", async (t) => {
  const outcomes: Outcome[] = [];
  const h = harness([
    stage({ onRequestHeaders: () => ({ type: "continue", needs: { requestBody: true } }) }, outcomes),
  ]);
  await h.feed(requestHeaders({}));
  h.processor.close();
  h.processor.close();
  t.same(outcomes, [{ answeredBy: "unknown", cancelled: true }]);
  t.equal(await counterValue(h.metrics, "guard_extproc_streams_total", { outcome: "cancelled" }), 1);
  t.equal(await counterValue(h.metrics, "guard_extproc_anomalies_total", { kind: "cancelled_mid_request" }), 1);
  t.same(await h.feed(requestBody("{}")), [], "nothing is sent on a closed stream");
});

t.test("a throwing stage is skipped; the request goes on", async (t) => {
  const h = harness([
    stage({
      onRequestHeaders: () => {
        throw new Error("boom");
      },
    }),
    {
      name: "second",
      start: () => ({ onRequestHeaders: () => ({ type: "continue", edits: { setHeaders: { "x-second": "ran" } } }) }),
    },
  ]);
  const [answer] = await h.feed(requestHeaders({}, true));
  t.same(setHeadersOf(answer), { "x-second": "ran" });
  t.equal(await counterValue(h.metrics, "guard_stage_errors_total", { stage: "probe", phase: "request_headers" }), 1);
});

t.test("trailers are tolerated", async (t) => {
  const h = harness([stage({})]);
  const out = await h.feed(
    { request: "requestTrailers", requestTrailers: {} },
    { request: "responseTrailers", responseTrailers: {} },
  );
  t.same(out, [{ requestTrailers: {} }, { responseTrailers: {} }]);
});

t.test("streamed chunks are each answered; the stage sees the whole body", async (t) => {
  const seen: string[] = [];
  const h = harness([
    stage({
      onRequestHeaders: () => ({ type: "continue", needs: { requestBody: true } }),
      onRequestBody: (body) => {
        seen.push(new TextDecoder().decode(body));
        return { type: "continue" };
      },
    }),
  ]);
  await h.feed(requestHeaders({}));
  const out = await h.feed(requestBody('{"a":', false), requestBody("1}", true));
  t.equal(out.length, 2);
  t.same(seen, ['{"a":1}']);
});

t.test("a stage holding a message can extend Envoy's deadline", async (t) => {
  const h = harness([
    stage({
      onRequestHeaders() {
        return { type: "continue" };
      },
    }),
    {
      name: "holder",
      start: (exchange) => ({
        onRequestHeaders() {
          exchange.extendDeadline(2_500);
          return { type: "continue" };
        },
      }),
    },
  ]);
  const out = await h.feed(requestHeaders({}, true));
  t.same(out[0], { overrideMessageTimeout: { seconds: 2, nanos: 500_000_000 } });
  t.ok(out[1]?.requestHeaders, "then the real answer");
});

t.test("a frame of no known kind gets a continue for the phase awaited, and is counted", async (t) => {
  const h = harness([
    stage({
      onRequestHeaders: () => ({ type: "continue", needs: { requestBody: true, responseHeaders: true } }),
      onResponseHeaders: () => ({ type: "continue", needs: { responseBody: true } }),
    }),
  ]);
  t.same(await h.feed({}), [{ requestHeaders: { response: { status: "CONTINUE" } } }], "before the request headers");
  t.equal(h.processor.state, "request_headers", "and the state stays");
  await h.feed(requestHeaders({ "content-length": "2" }));
  t.same(await h.feed({}), [{ requestBody: { response: { status: "CONTINUE" } } }], "awaiting the request body");
  await h.feed(requestBody("{}"));
  t.same(await h.feed({}), [{ responseHeaders: { response: { status: "CONTINUE" } } }], "awaiting the response");
  await h.feed(responseHeaders(200));
  t.same(await h.feed({}), [{ responseBody: { response: { status: "CONTINUE" } } }], "awaiting the response body");
  await h.feed(responseBody("{}"));
  t.equal(h.processor.state, "done");
  t.same(await h.feed({}), [], "nothing awaited once done: an answer would be spurious");
  t.equal(await counterValue(h.metrics, "guard_extproc_anomalies_total", { kind: "unknown_frame" }), 5);
});

/**
 * A processor over `config`'s routes with the annotate stage alone (it follows no body), recording
 * the kinds of the frames it sends and "done" when it ends its gRPC stream itself.
 */
async function annotatedProcessor(config: string) {
  const parsed = parseConfig(config);
  if (!parsed.ok) throw new Error("config");
  const { Pipeline } = await import("../../../src/pipeline/pipeline.js");
  const { StreamProcessor } = await import("../../../src/extproc/stream.js");
  const { createCoreMetrics } = await import("../../../src/metrics/registry.js");
  const { pino } = await import("pino");
  const events: string[] = [];
  const metrics = createCoreMetrics("test");
  const log = pino({ level: "silent" });
  const pipeline = new Pipeline(parsed.config.routes, [createAnnotateStage(parsed.config.annotate)], {
    metrics,
    log,
    now: () => 0,
  });
  const processor = new StreamProcessor(
    { pipeline: () => pipeline, metrics, log, now: () => 0 },
    (frame) => events.push(Object.keys(frame).join("+")),
    () => events.push("done"),
  );
  return { events, processor };
}

t.test("the stream reports done once, right after the exchange's last answer", async (t) => {
  const { events, processor } = await annotatedProcessor("routes: [{ name: chat }]");
  await processor.handle(requestHeaders({}, true));
  t.same(events, ["requestHeaders+modeOverride"], "not done while the response is still to come");
  await processor.handle(responseHeaders(200));
  t.same(events, ["requestHeaders+modeOverride", "responseHeaders", "done"]);
  processor.close();
  t.equal(events.filter((event) => event === "done").length, 1);
});

t.test(
  "a stream no stage follows keeps its gRPC stream open until Envoy closes it: NDJSON where declared",
  async (t) => {
    for (const [declaration, ndjsonIsStream] of [
      ["{ name: ollama, streaming: { ndjson: { format: ollama } } }", true],
      ["{ name: ollama }", false],
    ] as const) {
      const { events, processor } = await annotatedProcessor(`routes: [${declaration}]`);
      await processor.handle(requestHeaders({}, true));
      await processor.handle(responseHeaders(200, { "content-type": "application/x-ndjson" }));
      t.equal(events.includes("done"), !ndjsonIsStream, `${declaration}: ended by the guard ${!ndjsonIsStream}`);
      t.equal(processor.state, "done", "the exchange itself is over either way");
      processor.close();
    }
  },
);

describeStreamedResponses();

/** Streamed responses (text/event-stream): a stage asks for "stream" and sees chunks as they pass. */
function describeStreamedResponses(): void {
  const sse = { "content-type": "text/event-stream" };
  const text = (bytes: Uint8Array | undefined): string => new TextDecoder().decode(bytes);
  const streamedOf = (frame: ProcessingResponse | undefined) =>
    frame?.responseBody?.response.bodyMutation?.streamedResponse;

  /** A stage that wants the body as a stream and answers each chunk with `onChunk`. */
  function streaming(onChunk: StageRun["onResponseChunk"], outcomes: Outcome[] = []): Stage {
    return stage(
      {
        onRequestHeaders: () => ({ type: "continue", needs: { responseHeaders: true, responseBody: true } }),
        onResponseHeaders: () => ({ type: "continue", responseBody: "stream" }),
        ...(onChunk === undefined ? {} : { onResponseChunk: onChunk }),
      },
      outcomes,
    );
  }

  t.test("a streamed response switches to full duplex and each chunk goes on as soon as it is answered", async (t) => {
    const outcomes: Outcome[] = [];
    const h = harness([streaming((chunk) => ({ type: "forward", bytes: chunk }), outcomes)]);
    await h.feed(requestHeaders({}, true));
    const [headers] = await h.feed(responseHeaders(200, sse));
    t.equal(headers?.modeOverride?.responseBodyMode, "FULL_DUPLEX_STREAMED");
    t.equal(headers?.modeOverride?.responseTrailerMode, "SEND", "Envoy requires trailers with full duplex");
    t.equal(h.processor.state, "response_stream");
    const first = await h.feed(responseBody("data: 1\n\n", false));
    t.equal(text(streamedOf(first[0])?.body), "data: 1\n\n");
    t.equal(streamedOf(first[0])?.endOfStream, false);
    const last = await h.feed(responseBody("", true));
    t.equal(streamedOf(last[0])?.endOfStream, true, "the empty end chunk is answered with end_of_stream");
    t.equal(h.processor.state, "done");
    t.match(outcomes, [{ answeredBy: "upstream", status: 200, streamed: true, cancelled: false }]);
    // The harness clock moves 5 ms per reading: the release, the ask for the response headers,
    // their arrival; the end later.
    const firstToken = outcomes[0]?.upstreamLatencyMs ?? 0;
    const generation = outcomes[0]?.generationMs ?? 0;
    t.equal(firstToken, 10, "the first token: the response headers");
    t.ok(generation > firstToken, `the whole generation: release to the last chunk (${generation} ms)`);
  });

  t.test("held bytes are not answered until a later chunk releases them", async (t) => {
    let held = "";
    const h = harness([
      streaming((chunk, end) => {
        held += text(chunk);
        if (!end && !held.endsWith("\n\n")) return { type: "forward", bytes: new Uint8Array() };
        const out = held;
        held = "";
        return { type: "forward", bytes: new TextEncoder().encode(out) };
      }),
    ]);
    await h.feed(requestHeaders({}, true), responseHeaders(200, sse));
    t.same(await h.feed(responseBody("data: hel", false)), [], "nothing sent while everything is held");
    const released = await h.feed(responseBody("lo\n\n", false));
    t.equal(text(streamedOf(released[0])?.body), "data: hello\n\n");
  });

  t.test("a cut ends the response with the stage's last bytes and is the guard's answer", async (t) => {
    const outcomes: Outcome[] = [];
    const h = harness([
      streaming(
        () => ({ type: "cut", bytes: new TextEncoder().encode("data: {}\n\n"), reason: "contract.violated" }),
        outcomes,
      ),
    ]);
    await h.feed(requestHeaders({}, true), responseHeaders(200, sse));
    const [cut] = await h.feed(responseBody("data: bad\n\n", false));
    t.same(streamedOf(cut), { body: new TextEncoder().encode("data: {}\n\n"), endOfStream: true });
    t.equal(h.processor.state, "done");
    t.match(outcomes, [{ answeredBy: "guard", status: 200, reason: "contract.violated", streamed: true }]);
    t.equal(outcomes[0]?.generationMs, undefined, "a cut answer's generation never ended");
    t.equal(
      await counterValue(h.metrics, "guard_replies_total", { reason: "contract.violated", status: "200" }),
      1,
      "counted as a guard answer on the 200 already sent",
    );
  });

  t.test("the stages' edits to a streamed response's trailers go with the trailers' answer", async (t) => {
    const h = harness([
      {
        name: "verdict",
        start: () => ({
          onRequestHeaders: () => ({ type: "continue", needs: { responseHeaders: true } }),
          onResponseHeaders: () => ({ type: "continue", responseBody: "stream" }),
          onResponseChunk: (chunk) => ({ type: "forward", bytes: chunk }),
          onResponseTrailers: () => ({ setHeaders: { "x-guard-contract": "passed" } }),
        }),
      },
    ]);
    await h.feed(requestHeaders({}, true), responseHeaders(200, sse), responseBody("data: x\n\n", false));
    const [trailers] = await h.feed({ request: "responseTrailers", responseTrailers: {} });
    t.same(setHeadersOf(trailers), { "x-guard-contract": "passed" });
    t.equal(h.processor.state, "done");
  });

  t.test("trailers end a stream whose last chunk did not: held bytes go out first", async (t) => {
    let held: Uint8Array = new Uint8Array();
    const h = harness([
      streaming((chunk, end) => {
        if (!end) {
          held = chunk;
          return { type: "forward", bytes: new Uint8Array() };
        }
        return { type: "forward", bytes: held };
      }),
    ]);
    await h.feed(requestHeaders({}, true), responseHeaders(200, sse), responseBody("data: x\n\n", false));
    const out = await h.feed({ request: "responseTrailers", responseTrailers: {} });
    t.same(out, [
      {
        responseBody: {
          response: { status: "CONTINUE", bodyMutation: { streamedResponse: { body: held, endOfStream: false } } },
        },
      },
      { responseTrailers: {} },
    ]);
    t.equal(h.processor.state, "done");
  });

  t.test("a client that leaves mid-stream ends the exchange as cancelled, with what was known", async (t) => {
    const outcomes: Outcome[] = [];
    const h = harness([streaming((chunk) => ({ type: "forward", bytes: chunk }), outcomes)]);
    await h.feed(requestHeaders({}, true), responseHeaders(200, sse), responseBody("data: 1\n\n", false));
    h.processor.close();
    t.match(outcomes, [{ cancelled: true, status: 200, streamed: true }]);
    t.type(outcomes[0]?.upstreamLatencyMs, "number");
    t.equal(outcomes[0]?.generationMs, undefined, "its end was never seen");
  });

  t.test("a stage that fails on a chunk is counted and lets its input through", async (t) => {
    const h = harness([
      streaming(() => {
        throw new Error("boom");
      }),
    ]);
    await h.feed(requestHeaders({}, true), responseHeaders(200, sse));
    const [out] = await h.feed(responseBody("data: 1\n\n", false));
    t.equal(text(streamedOf(out)?.body), "data: 1\n\n");
    t.equal(await counterValue(h.metrics, "guard_stage_errors_total", { stage: "probe", phase: "response_chunk" }), 1);
  });

  t.test("a chunk whose handling fails is answered with its own bytes, as full duplex requires", async (t) => {
    // A step without bytes breaks the handler itself, past the pipeline's per-stage guard.
    const h = harness([streaming(() => ({ type: "forward" }) as unknown as ChunkStep)]);
    await h.feed(requestHeaders({}, true), responseHeaders(200, sse));
    const [middle] = await h.feed(responseBody("data: 1\n\n", false));
    t.same(streamedOf(middle), { body: new TextEncoder().encode("data: 1\n\n"), endOfStream: false });
    const [last] = await h.feed(responseBody("", true));
    t.equal(streamedOf(last)?.endOfStream, true);
    t.equal(h.processor.state, "done");
    t.equal(await counterValue(h.metrics, "guard_extproc_anomalies_total", { kind: "handler_error" }), 2);
  });

  t.test("the strongest need decides: whole over stream, and none leaves the body alone", async (t) => {
    const wantsWhole = stage({
      onRequestHeaders: () => ({ type: "continue", needs: { responseHeaders: true, responseBody: true } }),
    });
    const both = harness([wantsWhole, streaming(undefined)]);
    await both.feed(requestHeaders({}, true));
    const [whole] = await both.feed(responseHeaders(200, sse));
    t.equal(whole?.modeOverride?.responseBodyMode, "BUFFERED");
    t.equal(both.processor.state, "response_body");

    const declining = harness([
      stage({
        onRequestHeaders: () => ({ type: "continue", needs: { responseHeaders: true, responseBody: true } }),
        onResponseHeaders: () => ({ type: "continue", responseBody: "none" }),
      }),
    ]);
    await declining.feed(requestHeaders({}, true));
    const [none] = await declining.feed(responseHeaders(200, sse));
    t.equal(none?.modeOverride, undefined, "no body: the mode of the request headers (body NONE) stays");
    t.equal(declining.processor.state, "done");
  });
}
