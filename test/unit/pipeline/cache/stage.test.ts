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
  const anonymous = fakeExchange({ body: PROMPT });
  (anonymous.request.headers as Map<string, string>).delete("authorization");
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
  const stream = await exchangeOnce(h, { body: { ...PROMPT, stream: true } });
  t.equal(headersOf(stream.responseSteps[0]!)["x-guard-cache-reason"], "stream");
  t.equal(await h.metric("guard_cache_bypass_total", { route: "chat" }), 4);
  t.equal(await h.metric("guard_cache_stores_total"), 0);
  t.equal(await h.metric("guard_cache_bypass_total", { reason: "stream" }), 1);
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
    ["event stream", { headers: { "content-type": "text/event-stream" } }, "stream"],
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

t.test("the contracts stage's model version wins over the header", async (t) => {
  const h = harness(CHAT);
  await exchangeOnce(h, { body: PROMPT }, { headers: { "x-model-version": "v1" } });
  await exchangeOnce(
    h,
    { body: { temperature: 0, other: 1 } },
    { headers: { "x-model-version": "v1" }, prepare: (exchange) => (exchange.modelVersion = "v2") },
  );
  t.equal((await exchangeOnce(h, { body: PROMPT })).request.type, "continue");
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
