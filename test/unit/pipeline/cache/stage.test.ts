import t from "tap";
import type { Exchange, Step } from "../../../../src/pipeline/types.js";
import {
  fakeExchange,
  type Harness,
  harness,
  type RequestSpec,
  requestPhase,
  response,
  responsePhase,
  SSE_RESPONSE_HEADERS,
  type StreamedResponse,
  sseEvents,
  streamPhase,
} from "./fakes.js";

const CHAT = { routes: [{ name: "chat", cache: { enabled: true, ttlSeconds: 60 } }, { name: "plain" }] };
const PROMPT = { model: "m", temperature: 0, messages: [{ role: "user", content: "hi" }] };
const ANSWER = { choices: [{ message: { content: "hello" } }] };

function headersOf(step: Step): Record<string, string> {
  if (step.type === "reply") return { ...step.reply.headers };
  return { ...step.edits?.setHeaders };
}

/** One full exchange through the stage: request phase, and the upstream's answer if it went upstream. */
async function exchangeOnce(
  h: Harness,
  spec: RequestSpec & { body?: unknown },
  upstream: {
    status?: number;
    headers?: Record<string, string>;
    body?: unknown;
    prepare?: (exchange: Exchange) => void;
  } = {},
) {
  const exchange = fakeExchange(spec);
  const run = h.stage.start(exchange);
  if (run === undefined) throw new Error("stage did not start");
  const request = await requestPhase(run, exchange, spec.body);
  let responseSteps: Step[] = [];
  if (request.type === "continue") {
    upstream.prepare?.(exchange);
    responseSteps = await responsePhase(
      run,
      exchange,
      response(upstream.status ?? 200, upstream.headers ?? {}),
      upstream.body ?? ANSWER,
    );
  }
  run.onEnd?.({ answeredBy: request.type === "reply" ? "guard" : "upstream", cancelled: false });
  return { request, responseSteps, exchange };
}

t.test("a miss is stored and the next identical request is answered from memory", async (t) => {
  const h = harness(CHAT);
  const first = await exchangeOnce(h, { body: PROMPT }, { headers: { "set-cookie": "s=1", "x-model-version": "v1" } });
  t.equal(first.request.type, "continue");
  t.same(first.request.type === "continue" && first.request.needs, { responseHeaders: true, responseBody: true });
  t.equal(headersOf(first.responseSteps[0]!)["x-guard-cache"], "miss");

  h.time.advance(5_400);
  const second = await exchangeOnce(h, {
    body: { messages: [{ content: "hi", role: "user" }], temperature: 0, model: "m", user: "someone" },
  });
  t.equal(second.request.type, "reply");
  if (second.request.type !== "reply") return;
  t.equal(second.request.reply.status, 200);
  t.equal(second.request.reply.reason, "cache.hit");
  t.same(JSON.parse(Buffer.from(second.request.reply.body).toString()), ANSWER);
  t.same(
    headersOf(second.request),
    {
      "content-type": "application/json",
      "x-model-version": "v1",
      "x-guard-cache": "hit",
      "x-guard-cache-tier": "local",
      age: "5",
    },
    "allow-listed headers only (no set-cookie)",
  );
  t.equal(await h.metric("guard_cache_hits_total", { route: "chat", tier: "local" }), 1);
  t.equal(await h.metric("guard_cache_misses_total", { route: "chat" }), 1);
  t.equal(await h.metric("guard_cache_stores_total", { route: "chat" }), 1);
});

t.test("a stored body does not keep the message it arrived in alive", async (t) => {
  const h = harness(CHAT);
  // How protobufjs hands over a bytes field in Node: a Buffer view into the whole decoded message.
  const answer = Buffer.from(JSON.stringify(ANSWER));
  const message = Buffer.concat([Buffer.alloc(64 * 1024), answer]);
  await exchangeOnce(h, { body: PROMPT }, { body: message.subarray(message.length - answer.length) });
  message.fill(0);
  const hit = await exchangeOnce(h, { body: PROMPT });
  if (hit.request.type !== "reply") return t.fail("expected a cache hit");
  const served = hit.request.reply.body;
  if (typeof served === "string") return t.fail("a cache hit serves bytes");
  t.equal(served.buffer.byteLength, answer.length, "the entry holds only its own bytes");
  t.same(JSON.parse(Buffer.from(hit.request.reply.body).toString()), ANSWER, "and they are a copy");
});

t.test("entries expire after the route's TTL", async (t) => {
  const h = harness(CHAT);
  await exchangeOnce(h, { body: PROMPT });
  h.time.advance(60_001);
  t.equal((await exchangeOnce(h, { body: PROMPT })).request.type, "continue");
});

t.test("tenants never share entries", async (t) => {
  const h = harness(CHAT);
  await exchangeOnce(h, { body: PROMPT, headers: { authorization: "Bearer tenant-a" } });
  t.equal(
    (await exchangeOnce(h, { body: PROMPT, headers: { authorization: "Bearer tenant-b" } })).request.type,
    "continue",
  );
  // An empty credential is no credential: the anonymous tenant.
  const anonymous = fakeExchange({ body: PROMPT, headers: { authorization: "" } });
  const run = h.stage.start(anonymous)!;
  t.equal((await requestPhase(run, anonymous, PROMPT)).type, "continue", "anonymous is its own tenant");
  run.onEnd?.({ answeredBy: "upstream", cancelled: true });
  t.equal(
    (await exchangeOnce(h, { body: PROMPT, headers: { authorization: "Bearer tenant-a" } })).request.type,
    "reply",
  );
});

t.test("routes without the cache are not touched", async (t) => {
  const h = harness(CHAT);
  t.equal(h.stage.start(fakeExchange({ route: "plain", body: PROMPT })), undefined);
  t.equal(h.stage.start(fakeExchange({ route: "unknown", body: PROMPT })), undefined);
});

t.test("uncacheable requests bypass, marked with a reason", async (t) => {
  const h = harness(CHAT);
  const hot = await exchangeOnce(h, { body: { ...PROMPT, temperature: 0.8 } });
  t.same(hot.request.type === "continue" && hot.request.needs, { responseHeaders: true });
  t.same(headersOf(hot.responseSteps[0]!), { "x-guard-cache": "bypass", "x-guard-cache-reason": "nondeterministic" });
  t.equal(
    (await exchangeOnce(h, { body: { ...PROMPT, temperature: 0.8 } })).request.type,
    "continue",
    "nothing was stored",
  );

  const noStore = await exchangeOnce(h, { body: PROMPT, headers: { "cache-control": "no-store" } });
  t.equal(headersOf(noStore.responseSteps[0]!)["x-guard-cache-reason"], "cache_control");
  const sampledStream = await exchangeOnce(h, { body: { ...PROMPT, temperature: 0.8, stream: true } });
  t.equal(headersOf(sampledStream.responseSteps[0]!)["x-guard-cache-reason"], "nondeterministic", "streams too");
  t.equal(await h.metric("guard_cache_bypass_total", { route: "chat" }), 4);
  t.equal(await h.metric("guard_cache_stores_total"), 0);
});

t.test("bypass annotation can be turned off to save the response round trip", async (t) => {
  const h = harness({ routes: [{ name: "chat", cache: { enabled: true, annotateBypass: false } }] });
  const { request } = await exchangeOnce(h, { body: { temperature: 1 } });
  t.same(request, { type: "continue" });
});

t.test("a request without a body is decided at its headers", async (t) => {
  const h = harness(CHAT);
  const spec = { method: "GET", path: "/v1/models", headers: { "x-guard-cache": "allow" } };
  const first = await exchangeOnce(h, spec);
  t.same(first.request.type === "continue" && first.request.needs, { responseHeaders: true, responseBody: true });
  t.equal((await exchangeOnce(h, spec)).request.type, "reply");
  const notOptedIn = await exchangeOnce(h, { method: "GET", path: "/v1/models" });
  t.equal(headersOf(notOptedIn.responseSteps[0]!)["x-guard-cache-reason"], "nondeterministic");
});

t.test("responses that must not be stored are not", async (t) => {
  const cases: [string, Parameters<typeof exchangeOnce>[2], string][] = [
    ["server error", { status: 500 }, "status"],
    ["event stream nobody asked for", { headers: { "content-type": "text/event-stream" } }, "stream_mismatch"],
    ["no-store", { headers: { "cache-control": "no-store" } }, "cache_control"],
    ["too large", { body: "x".repeat(2_000) }, "too_large"],
    ["contract violated", { prepare: (exchange) => (exchange.contract = "violated") }, "contract_violated"],
  ];
  for (const [name, upstream, reason] of cases) {
    const h = harness({ routes: [{ name: "chat", cache: { enabled: true, maxEntryBytes: 1_000 } }] });
    const first = await exchangeOnce(h, { body: PROMPT }, upstream);
    t.equal(headersOf(first.responseSteps[0]!)["x-guard-cache"], "miss", `${name}: still a miss`);
    t.equal((await exchangeOnce(h, { body: PROMPT })).request.type, "continue", `${name}: not stored`);
    t.equal(
      await h.metric("guard_cache_store_skipped_total", { route: "chat", reason }),
      1,
      `${name}: counted as ${reason}`,
    );
  }
});

t.test("a passed contract is stored", async (t) => {
  const h = harness(CHAT);
  await exchangeOnce(h, { body: PROMPT }, { prepare: (exchange) => (exchange.contract = "passed") });
  t.equal((await exchangeOnce(h, { body: PROMPT })).request.type, "reply");
});

t.test("a new model version stops old entries from being served", async (t) => {
  const h = harness(CHAT);
  await exchangeOnce(h, { body: PROMPT }, { headers: { "x-model-version": "v1" } });
  t.equal((await exchangeOnce(h, { body: PROMPT })).request.type, "reply");
  // Another request's response reveals the model moved on.
  await exchangeOnce(h, { body: { ...PROMPT, model: "other" } }, { headers: { "x-model-version": "v2" } });
  t.equal((await exchangeOnce(h, { body: PROMPT })).request.type, "continue", "v1 entry no longer served");
  t.equal((await exchangeOnce(h, { body: { ...PROMPT, model: "other" } })).request.type, "reply", "the v2 entry is");
  t.equal(await h.metric("guard_cache_epoch_changes_total", { route: "chat", cause: "version" }), 2, "unset → v1 → v2");
});

t.test("an answer that is not stored still shows the new version: the old entry is not served", async (t) => {
  const h = harness(CHAT);
  await exchangeOnce(h, { body: PROMPT }, { headers: { "x-model-version": "v1" } });
  t.equal((await exchangeOnce(h, { body: PROMPT })).request.type, "reply");
  // A sampled request bypasses the cache; its answer comes from the pool that moved to v2.
  const bypassed = await exchangeOnce(
    h,
    { body: { ...PROMPT, temperature: 0.7 } },
    { headers: { "x-model-version": "v2" } },
  );
  t.equal(headersOf(bypassed.responseSteps[0]!)["x-guard-cache"], "bypass");
  t.equal((await exchangeOnce(h, { body: PROMPT })).request.type, "continue", "the v1 answer is not served");
  const notStored = await exchangeOnce(
    h,
    { body: { ...PROMPT, model: "m2" } },
    { status: 500, headers: { "x-model-version": "v3" } },
  );
  t.equal(notStored.request.type, "continue");
  t.equal(
    await h.metric("guard_cache_epoch_changes_total", { route: "chat", cause: "version" }),
    2,
    "an error answer says nothing about the version: unset → v1 → v2",
  );
});

t.test("two pools on different versions keep their own entries, without moving each other's epoch", async (t) => {
  const h = harness(CHAT);
  const light = { body: PROMPT, tier: "light" };
  const heavy = { body: { ...PROMPT, max_tokens: 4000 }, tier: "heavy" };
  for (let round = 0; round < 3; round++) {
    const first = await exchangeOnce(h, light, { headers: { "x-model-version": "v1" } });
    const second = await exchangeOnce(h, heavy, { headers: { "x-model-version": "v2" } });
    t.equal(first.request.type, round === 0 ? "continue" : "reply", `light, round ${round}`);
    t.equal(second.request.type, round === 0 ? "continue" : "reply", `heavy, round ${round}`);
  }
  t.equal(
    await h.metric("guard_cache_epoch_changes_total", { route: "chat", cause: "version" }),
    2,
    "each pool's version was set once, under the route's label",
  );
  // The heavy pool moves to v3: only its entries stop being served.
  await exchangeOnce(h, { body: { ...PROMPT, n: 2 }, tier: "heavy" }, { headers: { "x-model-version": "v3" } });
  t.equal((await exchangeOnce(h, heavy)).request.type, "continue", "the heavy pool's v2 entry is not served");
  t.equal((await exchangeOnce(h, light)).request.type, "reply", "the light pool's v1 entry still is");
});

t.test("the contracts stage's model version wins over the header", async (t) => {
  const h = harness(CHAT);
  await exchangeOnce(h, { body: PROMPT }, { headers: { "x-model-version": "v1" } });
  await exchangeOnce(
    h,
    { body: { temperature: 0, other: 1 } },
    { headers: { "x-model-version": "v1" }, prepare: (exchange) => (exchange.statedModelVersion = "v2") },
  );
  t.equal((await exchangeOnce(h, { body: PROMPT })).request.type, "continue");
});

t.test("versions past the label bound, all labelled other, still keep their entries apart", async (t) => {
  const h = harness(CHAT);
  const past = (version: string) => (exchange: Exchange) => {
    exchange.modelVersion = "other";
    exchange.statedModelVersion = version;
  };
  await exchangeOnce(h, { body: PROMPT }, { prepare: past("v21") });
  t.equal((await exchangeOnce(h, { body: PROMPT }, { prepare: past("v21") })).request.type, "reply");
  await exchangeOnce(h, { body: { temperature: 0, other: 1 } }, { prepare: past("v22") });
  t.equal(
    (await exchangeOnce(h, { body: PROMPT })).request.type,
    "continue",
    "v21's answer is not served once v22 answers",
  );
});

t.test("purge empties a route", async (t) => {
  const h = harness(CHAT);
  await exchangeOnce(h, { body: PROMPT });
  t.same(await h.stage.purgeRoute("chat"), { route: "chat", removedLocal: 1, shared: false });
  t.equal((await exchangeOnce(h, { body: PROMPT })).request.type, "continue");
  t.equal(await h.stage.purgeRoute("plain"), undefined);
  t.equal(await h.stage.purgeRoute("nope"), undefined);
});

async function startLeaderAndFollowers(h: Harness, followers: number) {
  const leaderExchange = fakeExchange({ body: PROMPT });
  const leader = h.stage.start(leaderExchange)!;
  const leaderStep = await requestPhase(leader, leaderExchange, PROMPT);
  const waiting = Array.from({ length: followers }, () => {
    const exchange = fakeExchange({ body: PROMPT });
    const run = h.stage.start(exchange)!;
    return { exchange, run, step: requestPhase(run, exchange, PROMPT) };
  });
  // Let the followers reach their wait.
  await new Promise((resolve) => setImmediate(resolve));
  return { leaderExchange, leader, leaderStep, waiting };
}

t.test("identical concurrent misses reach the upstream once", async (t) => {
  const h = harness(CHAT);
  const { leaderExchange, leader, leaderStep, waiting } = await startLeaderAndFollowers(h, 3);
  t.equal(leaderStep.type, "continue");
  t.equal(h.time.pendingTimers, 3, "three followers waiting");
  await responsePhase(leader, leaderExchange, response(200), ANSWER);
  leader.onEnd?.({ answeredBy: "upstream", cancelled: false });
  for (const follower of waiting) {
    const step = await follower.step;
    t.equal(step.type, "reply");
    t.equal(headersOf(step)["x-guard-cache-tier"], "coalesced");
    follower.run.onEnd?.({ answeredBy: "guard", cancelled: false });
  }
  t.equal(await h.metric("guard_cache_coalesced_total", { route: "chat", outcome: "served" }), 3);
  t.equal(await h.metric("guard_cache_misses_total"), 1);
  t.equal(h.time.pendingTimers, 0);
});

t.test("when the leader's response is not storable, followers go upstream on their own", async (t) => {
  const h = harness(CHAT);
  const { leaderExchange, leader, waiting } = await startLeaderAndFollowers(h, 2);
  await responsePhase(leader, leaderExchange, response(503), "busy");
  for (const follower of waiting) {
    const step = await follower.step;
    t.same(step.type === "continue" && step.needs, { responseHeaders: true, responseBody: true });
  }
  t.equal(await h.metric("guard_cache_coalesced_total", { outcome: "leader_failed" }), 2);
  // A follower that went upstream may store its own good answer.
  const follower = waiting[0]!;
  await responsePhase(follower.run, follower.exchange, response(200), ANSWER);
  t.equal((await exchangeOnce(h, { body: PROMPT })).request.type, "reply");
});

t.test("a cancelled leader releases its followers and leaves no flight behind", async (t) => {
  const h = harness(CHAT);
  const { leader, waiting } = await startLeaderAndFollowers(h, 2);
  leader.onEnd?.({ answeredBy: "unknown", cancelled: true });
  for (const follower of waiting) t.equal((await follower.step).type, "continue");
  t.equal(h.time.pendingTimers, 0);
  const next = await exchangeOnce(h, { body: PROMPT });
  t.equal(next.request.type, "continue", "the next request leads instead of waiting");
  t.equal(h.time.pendingTimers, 0);
});

t.test("followers stop waiting after singleFlightWaitMs", async (t) => {
  const h = harness({
    envoy: { messageTimeoutMs: 1_000 },
    routes: [{ name: "chat", cache: { enabled: true, singleFlightWaitMs: 2_000 } }],
  });
  const { waiting } = await startLeaderAndFollowers(h, 1);
  const follower = waiting[0]!;
  t.same(follower.exchange.deadlineExtensions, [2_100], "Envoy asked to wait longer than its message timeout");
  h.time.advance(1_999);
  let settled = false;
  void follower.step.then(() => (settled = true));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(settled, false);
  h.time.advance(1);
  t.equal((await follower.step).type, "continue");
  t.equal(await h.metric("guard_cache_coalesced_total", { outcome: "timeout" }), 1);
});

t.test("a follower whose stream ends stops waiting", async (t) => {
  const h = harness(CHAT);
  const { waiting } = await startLeaderAndFollowers(h, 1);
  const follower = waiting[0]!;
  follower.run.onEnd?.({ answeredBy: "unknown", cancelled: true });
  t.same(await follower.step, { type: "continue" });
  t.equal(h.time.pendingTimers, 0);
});

t.test("single-flight can be turned off", async (t) => {
  const h = harness({ routes: [{ name: "chat", cache: { enabled: true, singleFlightWaitMs: 0 } }] });
  const { waiting } = await startLeaderAndFollowers(h, 1);
  t.equal((await waiting[0]!.step).type, "continue");
});

// --- Streams -------------------------------------------------------------------------------------

const STREAM_PROMPT = { ...PROMPT, stream: true };
const PIECES = ["Hel", "lo, ", "world"];
const text = (bytes: Uint8Array | string): string =>
  typeof bytes === "string" ? bytes : Buffer.from(bytes).toString();

/** The request phase only, then the client leaves: is it answered from the cache? Nothing is stored. */
async function peek(h: Harness, body: unknown, headers: Record<string, string> = {}): Promise<Step["type"]> {
  const exchange = fakeExchange({ body, headers });
  const run = h.stage.start(exchange)!;
  const step = await requestPhase(run, exchange, body);
  run.onEnd?.({ answeredBy: step.type === "reply" ? "guard" : "unknown", cancelled: step.type !== "reply" });
  return step.type;
}

/** One streamed exchange: the request phase, and the upstream's event stream if it went upstream. */
async function streamOnce(
  h: Harness,
  spec: RequestSpec & { body?: unknown },
  upstream: {
    status?: number;
    headers?: Record<string, string>;
    chunks?: readonly (string | Uint8Array)[];
    /** false: the stream stops before its last chunk; onEnd then says how the exchange ended. */
    endOfStream?: boolean;
    end?: { answeredBy: "upstream" | "guard" | "unknown"; cancelled: boolean };
    prepare?: (exchange: Exchange) => void;
  } = {},
): Promise<{ request: Step; response: StreamedResponse | undefined; exchange: Exchange }> {
  const exchange = fakeExchange(spec);
  const run = h.stage.start(exchange);
  if (run === undefined) throw new Error("stage did not start");
  const request = await requestPhase(run, exchange, spec.body);
  let streamed: StreamedResponse | undefined;
  if (request.type === "continue") {
    upstream.prepare?.(exchange);
    streamed = await streamPhase(
      run,
      exchange,
      response(upstream.status ?? 200, { ...SSE_RESPONSE_HEADERS, ...upstream.headers }),
      upstream.chunks ?? [...sseEvents(PIECES), ""],
      upstream.endOfStream ?? true,
    );
  }
  run.onEnd?.({
    ...(upstream.end ?? { answeredBy: request.type === "reply" ? "guard" : "upstream", cancelled: false }),
    streamed: true,
  });
  return { request, response: streamed, exchange };
}

t.test("a stream miss passes through untouched and is stored once it has ended with [DONE]", async (t) => {
  const h = harness(CHAT);
  const frames = sseEvents(PIECES);
  const exchange = fakeExchange({ body: STREAM_PROMPT });
  const run = h.stage.start(exchange)!;
  const request = await requestPhase(run, exchange, STREAM_PROMPT);
  t.same(request.type === "continue" && request.needs, { responseHeaders: true, responseBody: true });
  exchange.response = response(200, { ...SSE_RESPONSE_HEADERS, "x-model-version": "v1", "set-cookie": "s=1" });
  const headers = run.onResponseHeaders!(exchange.response) as Step;
  t.equal(headers.type === "continue" && headers.responseBody, "stream", "watched as it passes, never held whole");
  t.equal(headersOf(headers)["x-guard-cache"], "miss");

  for (const frame of frames) {
    const chunk = new Uint8Array(Buffer.from(frame));
    const step = await run.onResponseChunk!(chunk, false);
    t.equal(step.type, "forward");
    t.equal(step.bytes, chunk, "the very bytes it was given, at once: the stage holds nothing back");
  }
  t.equal(await peek(h, STREAM_PROMPT), "continue", "[DONE] seen, but not the end of the stream: nothing stored");
  t.equal(await h.metric("guard_cache_stores_total"), 0);
  const last = new Uint8Array(0);
  t.equal((await run.onResponseChunk!(last, true)).bytes, last);
  t.equal(await h.metric("guard_cache_stores_total", { route: "chat" }), 1, "stored at the stream's end");
  run.onEnd?.({ answeredBy: "upstream", cancelled: false, status: 200, streamed: true });

  h.time.advance(2_000);
  const hit = await streamOnce(h, { body: STREAM_PROMPT });
  if (hit.request.type !== "reply") return t.fail("expected a hit");
  t.equal(hit.request.reply.status, 200);
  t.equal(hit.request.reply.reason, "cache.hit");
  t.equal(text(hit.request.reply.body), frames.join(""), "the stored event stream, byte for byte, with its [DONE]");
  t.same(headersOf(hit.request), {
    "content-type": "text/event-stream",
    "x-model-version": "v1",
    "x-guard-cache": "hit",
    "x-guard-cache-tier": "local",
    age: "2",
  });
  t.equal(await h.metric("guard_cache_hits_total", { route: "chat", tier: "local" }), 1);
  t.equal(await h.metric("guard_cache_store_skipped_total"), 0);
});

t.test("a replayed stream says it is one even when content-type is not allow-listed", async (t) => {
  const h = harness({ routes: [{ name: "chat", cache: { enabled: true, allowHeaders: ["x-model-version"] } }] });
  await streamOnce(h, { body: STREAM_PROMPT }, { headers: { "content-type": "text/event-stream; charset=utf-8" } });
  const hit = await streamOnce(h, { body: STREAM_PROMPT });
  t.equal(hit.request.type, "reply");
  t.equal(headersOf(hit.request)["content-type"], "text/event-stream; charset=utf-8");
});

t.test("an event stream split anywhere, even inside an event or its line ending, is copied exactly", async (t) => {
  const h = harness(CHAT);
  const whole = sseEvents(PIECES).join("").replaceAll("\n", "\r\n");
  const chunks = [whole.slice(0, 7), whole.slice(7, 60), whole.slice(60, -1), whole.slice(-1)];
  await streamOnce(h, { body: STREAM_PROMPT }, { chunks });
  const hit = await streamOnce(h, { body: STREAM_PROMPT });
  t.equal(hit.request.type === "reply" && text(hit.request.reply.body), whole);
});

t.test("a Responses API stream is complete with response.completed, and not with response.failed", async (t) => {
  const event = (type: string, extra: Record<string, unknown> = {}) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, ...extra })}\n\n`;
  const delta = event("response.output_text.delta", { delta: "hi" });
  const cases: [string, string[], string | undefined][] = [
    ["completed", [delta, event("response.completed", { response: { status: "completed", error: null } })], undefined],
    [
      "failed",
      [delta, event("response.failed", { response: { status: "failed", error: { code: "x" } } })],
      "stream_error",
    ],
    ["cut short", [delta], "incomplete"],
  ];
  for (const [name, chunks, reason] of cases) {
    const h = harness(CHAT);
    const body = { model: "m", temperature: 0, input: "hi", stream: true };
    await streamOnce(h, { path: "/v1/responses", body }, { chunks });
    const again = await streamOnce(h, { path: "/v1/responses", body });
    t.equal(again.request.type, reason === undefined ? "reply" : "continue", `${name}: stored or not`);
    if (reason !== undefined)
      t.equal(await h.metric("guard_cache_store_skipped_total", { reason }), 1, `${name}: ${reason}`);
  }
});

t.test("streams that must not be stored are not, and pass through all the same", async (t) => {
  const frames = sseEvents(PIECES);
  const violated = (exchange: Exchange) => (exchange.contract = "violated");
  const cases: [string, Parameters<typeof streamOnce>[2], string][] = [
    ["no [DONE] at the end (upstream cut it short)", { chunks: [...sseEvents(PIECES, false), ""] }, "incomplete"],
    [
      "[DONE] without the blank line that dispatches it",
      { chunks: [...frames.slice(0, -1), "data: [DONE]\n"] },
      "incomplete",
    ],
    ["an event after [DONE]", { chunks: [...frames, "data: {}\n\n"] }, "incomplete"],
    [
      "an error event before [DONE] (vLLM)",
      { chunks: [frames[0]!, 'data: {"error":{"message":"boom"}}\n\n', "data: [DONE]\n\n"] },
      "stream_error",
    ],
    [
      "an SSE error event",
      { chunks: [frames[0]!, 'event: error\ndata: {"message":"boom"}\n\n', "data: [DONE]\n\n"] },
      "stream_error",
    ],
    ["over maxEntryBytes", { chunks: [...frames, ""] }, "too_large"],
    ["contract violated, stream let through", { prepare: violated }, "contract_violated"],
    [
      "cut by the contracts stage (the cut chunk never reaches the cache)",
      { prepare: violated, endOfStream: false, end: { answeredBy: "guard", cancelled: false } },
      "contract_violated",
    ],
    [
      "client went away mid-stream",
      { endOfStream: false, end: { answeredBy: "unknown", cancelled: true } },
      "cancelled",
    ],
    ["not 200", { status: 500 }, "status"],
    ["no-store", { headers: { "cache-control": "no-store" } }, "cache_control"],
    ["gzip: its last event cannot be read", { headers: { "content-encoding": "gzip" } }, "incomplete"],
    [
      "JSON for a stream request",
      { headers: { "content-type": "application/json", "cache-control": "max-age=60" } },
      "stream_mismatch",
    ],
  ];
  for (const [name, upstream, reason] of cases) {
    // 3 events of ~130 bytes: the whole stream is over 300 bytes, its first two events are not.
    const maxEntryBytes = reason === "too_large" ? 300 : 10_000;
    const h = harness({ routes: [{ name: "chat", cache: { enabled: true, maxEntryBytes } }] });
    const first = await streamOnce(h, { body: STREAM_PROMPT }, upstream);
    t.equal(headersOf(first.response!.headers)["x-guard-cache"], "miss", `${name}: a miss`);
    for (const { sent, step } of first.response!.chunks)
      if (step.type !== "forward" || step.bytes !== sent) t.fail(`${name}: a chunk was not let through as it came`);
    t.equal(await h.metric("guard_cache_store_skipped_total", { route: "chat", reason }), 1, `${name}: ${reason}`);
    t.equal(await h.metric("guard_cache_store_skipped_total"), 1, `${name}: counted once`);
    t.equal(await peek(h, STREAM_PROMPT), "continue", `${name}: not stored`);
  }
});

t.test("a stream that does not need the cache's copy is not asked for", async (t) => {
  const h = harness(CHAT);
  const first = await streamOnce(h, { body: STREAM_PROMPT }, { status: 503 });
  const headers = first.response!.headers;
  t.equal(headers.type === "continue" && headers.responseBody, "none");
  t.same(first.response!.chunks, []);
});

t.test("a stream delivered whole (another stage needed all of it) is stored the same", async (t) => {
  const h = harness(CHAT);
  const exchange = fakeExchange({ body: STREAM_PROMPT });
  const run = h.stage.start(exchange)!;
  await requestPhase(run, exchange, STREAM_PROMPT);
  exchange.response = response(200, SSE_RESPONSE_HEADERS);
  run.onResponseHeaders!(exchange.response);
  run.onResponseBody!(new Uint8Array(Buffer.from(sseEvents(PIECES).join(""))));
  run.onEnd?.({ answeredBy: "upstream", cancelled: false });
  t.equal((await streamOnce(h, { body: STREAM_PROMPT })).request.type, "reply");
});

t.test("a stream request and the same request unstreamed never answer each other", async (t) => {
  const h = harness(CHAT);
  await exchangeOnce(h, { body: PROMPT });
  const stream = await streamOnce(h, { body: STREAM_PROMPT });
  t.equal(stream.request.type, "continue", "the stored JSON answer does not answer a stream request");
  const json = await exchangeOnce(h, { body: PROMPT });
  t.equal(json.request.type, "reply", "and the stored stream does not displace it");
  t.equal(json.request.type === "reply" && json.request.reply.headers["content-type"], "application/json");
  const replay = await streamOnce(h, { body: STREAM_PROMPT });
  t.equal(replay.request.type === "reply" && replay.request.reply.headers["content-type"], "text/event-stream");

  // Accept: text/event-stream alone (the body as the unstreamed request's) asks for a stream too.
  const accept = await streamOnce(h, { body: PROMPT, headers: { accept: "text/event-stream" } });
  t.equal(accept.request.type, "continue", "not answered with the JSON entry of the same body");
  t.equal((await streamOnce(h, { body: PROMPT, headers: { accept: "text/event-stream" } })).request.type, "reply");
  t.equal((await exchangeOnce(h, { body: PROMPT })).request.type, "reply");
  t.equal(await h.metric("guard_cache_stores_total"), 3);
  t.equal(await h.metric("guard_cache_misses_total"), 3);
});

t.test("stream_options is part of a stream's key", async (t) => {
  const h = harness(CHAT);
  await streamOnce(h, { body: STREAM_PROMPT });
  const withUsage = { ...STREAM_PROMPT, stream_options: { include_usage: true } };
  t.equal((await streamOnce(h, { body: withUsage })).request.type, "continue");
  t.equal((await streamOnce(h, { body: withUsage })).request.type, "reply");
});

t.test("identical streams are not coalesced: each goes upstream at once", async (t) => {
  const h = harness(CHAT);
  const leaderExchange = fakeExchange({ body: STREAM_PROMPT });
  const leader = h.stage.start(leaderExchange)!;
  t.equal((await requestPhase(leader, leaderExchange, STREAM_PROMPT)).type, "continue");
  const others = await Promise.all(
    [1, 2].map(async () => {
      const exchange = fakeExchange({ body: STREAM_PROMPT });
      const run = h.stage.start(exchange)!;
      return { exchange, run, step: await requestPhase(run, exchange, STREAM_PROMPT) };
    }),
  );
  for (const other of others)
    t.same(
      other.step.type === "continue" && other.step.needs,
      { responseHeaders: true, responseBody: true },
      "no wait",
    );
  t.equal(h.time.pendingTimers, 0, "nobody is waiting");
  t.equal(await h.metric("guard_cache_coalesced_total", { route: "chat", outcome: "stream_not_coalesced" }), 2);
  t.equal(await h.metric("guard_cache_misses_total"), 3);

  // A non-stream request identical but for `stream` is keyed apart: it leads its own flight.
  const json = await exchangeOnce(h, { body: PROMPT });
  t.equal(json.request.type, "continue");
  t.equal(await h.metric("guard_cache_coalesced_total", { outcome: "served" }), 0);

  // Every stream stores its own complete answer; the leader's end releases its flight.
  for (const { run, exchange } of [{ run: leader, exchange: leaderExchange }, ...others]) {
    await streamPhase(run, exchange, response(200, SSE_RESPONSE_HEADERS), [...sseEvents(PIECES), ""]);
    run.onEnd?.({ answeredBy: "upstream", cancelled: false, streamed: true });
  }
  t.equal(await h.metric("guard_cache_stores_total"), 4);
  const next = await streamOnce(h, { body: STREAM_PROMPT });
  t.equal(next.request.type === "reply" && headersOf(next.request)["x-guard-cache-tier"], "local");
});

t.test("a cancelled stream leader leaves no flight behind", async (t) => {
  const h = harness(CHAT);
  await streamOnce(h, { body: STREAM_PROMPT }, { endOfStream: false, end: { answeredBy: "unknown", cancelled: true } });
  t.equal(await h.metric("guard_cache_coalesced_total"), 0);
  const next = await streamOnce(h, { body: STREAM_PROMPT });
  t.equal(next.request.type, "continue");
  t.equal(await h.metric("guard_cache_coalesced_total"), 0, "the next stream leads: the old flight is gone");
  t.equal(await h.metric("guard_cache_stores_total"), 1);
});
