import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { Registry } from "prom-client";
import t from "tap";
import type { Contract } from "../../../../src/contracts/contract.js";
import { canarySchema, routeCanarySchema, type ShadowConfig } from "../../../../src/pipeline/canary/config.js";
import {
  type SampleResult,
  ShadowComparison,
  type ShadowSample,
  ShadowState,
  type SideRequest,
  type SideResult,
} from "../../../../src/pipeline/canary/shadow.js";
import { CanaryStates, createCanaryStage, SHADOW_HEADER } from "../../../../src/pipeline/canary/stage.js";
import type { Outcome, RequestInfo } from "../../../../src/pipeline/types.js";
import { chatExchange } from "../../../helpers/exchange.js";
import { registryValue } from "../../../helpers/registry-metrics.js";
import { VirtualTime } from "../../../helpers/virtual-time.js";
import { demoContract } from "../../contracts/fixtures.js";

const ROUTE = routeCanarySchema.parse({
  stable: "v1",
  candidates: [{ pool: "v3", weight: 0 }],
  shadow: { pool: "v3", sampleRate: 0.5, maxConcurrent: 2, timeoutMs: 1_000, minComparisons: 20 },
});
const SHADOW = ROUTE.shadow as ShadowConfig;
const REQUEST = {
  route: "eta",
  method: "POST",
  path: "/v1/predict/eta",
  headers: { "content-type": "application/json" },
};

/** An answer of the demo's eta model: `minutes` as it says, a fresh timestamp each time (noise). */
let clock = 0;
function etaAnswer(minutes: number): string {
  clock += 1_000;
  return JSON.stringify({
    order_id: "ord_abc",
    eta_minutes: minutes,
    status: "ON_TIME",
    computed_at: new Date(Date.now() - 60_000 + clock / 1000).toISOString(),
  });
}

interface Pending {
  readonly request: SideRequest;
  readonly resolve: (answer: { status: number; body: string }) => void;
  readonly reject: (error: Error) => void;
  readonly signal: AbortSignal;
}

function harness(settings: ShadowConfig = SHADOW, draws: readonly number[] = [0.1]) {
  const time = new VirtualTime();
  const pending: Pending[] = [];
  const samples: SampleResult[] = [];
  const sides: [string, SideResult][] = [];
  let draw = 0;
  const comparison = new ShadowComparison(settings, "v1", new ShadowState(), {
    random: () => draws[draw++ % draws.length] ?? 0,
    timers: time.timers,
    send: (request, signal) =>
      new Promise((resolve, reject) => {
        pending.push({ request, resolve, reject, signal });
      }),
    events: { sample: (result) => samples.push(result), side: (pool, result) => sides.push([pool, result]) },
    warn: () => undefined,
  });
  return { time, pending, samples, sides, comparison };
}

let eta: Contract;
t.before(async () => {
  eta = await demoContract("eta");
});

function primed(sample: ShadowSample, minutes: number): ShadowSample {
  sample.body = new TextEncoder().encode('{"order":"o-1"}');
  sample.primary = { contract: eta, payloads: eta.checkValue(JSON.parse(etaAnswer(minutes))).payloads };
  return sample;
}

/** Lets the promise callbacks queued by a settled side request run. */
const flush = () => new Promise((resolve) => setImmediate(resolve));

t.test("a sample is drawn at the sample rate, and only while a slot is free", async (t) => {
  const { comparison, samples } = harness(SHADOW, [0.1, 0.7, 0.2, 0.3]);
  const first = comparison.draw(REQUEST);
  t.ok(first, "0.1 < 0.5: drawn");
  t.equal(comparison.draw(REQUEST), undefined, "0.7: not drawn, and not counted");
  const second = comparison.draw(REQUEST);
  t.ok(second);
  t.equal(comparison.inFlight, 2);
  t.equal(comparison.draw(REQUEST), undefined, "0.3 drawn, but both slots are taken: dropped");
  t.same(samples, ["dropped"]);
  first?.settle();
  first?.settle();
  t.equal(comparison.inFlight, 1, "a slot is freed once");
  t.ok(comparison.draw(REQUEST), "a free slot draws again");
});

t.test("a fired sample asks the candidate and the stable pool once each, with the client's request", async (t) => {
  const { comparison, pending, samples, sides } = harness();
  const sample = primed(comparison.draw(REQUEST) as ShadowSample, 30);
  const done = comparison.fire(sample);
  t.equal(comparison.inFlight, 1, "the slot is held while the side requests are out");
  t.same(
    pending.map(({ request }) => [request.pool, request.path, request.method, new TextDecoder().decode(request.body)]),
    [
      ["v3", "/v1/predict/eta", "POST", '{"order":"o-1"}'],
      ["v1", "/v1/predict/eta", "POST", '{"order":"o-1"}'],
    ],
  );
  pending[0]?.resolve({ status: 200, body: etaAnswer(45) });
  pending[1]?.resolve({ status: 200, body: etaAnswer(30) });
  await done;
  t.equal(comparison.inFlight, 0);
  t.same(samples, ["compared"]);
  t.same(sides, [
    ["v3", "ok"],
    ["v1", "ok"],
  ]);
  const fields = new Map(comparison.report().fields.map((field) => [field.field, field]));
  t.same(fields.get("eta_minutes")?.candidate.differences?.mean, 15);
  t.same(fields.get("eta_minutes")?.noise.differences?.mean, 0);
  t.equal(fields.get("status")?.candidate.agreementRate, 1);
  t.equal(fields.get("computed_at")?.candidate.agreementRate, 0, "timestamps differ");
  t.equal(fields.get("computed_at")?.noise.agreementRate, 0, "between two stable answers too");
});

t.test("a side request is abandoned at its timeout, whether or not the sender heeds the abort", async (t) => {
  const { comparison, pending, samples, sides, time } = harness();
  const done = comparison.fire(primed(comparison.draw(REQUEST) as ShadowSample, 30));
  pending[1]?.resolve({ status: 200, body: etaAnswer(30) });
  await flush();
  time.advance(999);
  await flush();
  t.equal(comparison.inFlight, 1, "still waiting at 999 ms");
  time.advance(1);
  await done;
  t.ok(pending[0]?.signal.aborted, "the candidate's request was aborted");
  t.equal(comparison.inFlight, 0, "the slot is free at the timeout");
  t.same(sides, [
    ["v1", "ok"],
    ["v3", "timeout"],
  ]);
  t.same(samples, ["incomplete"]);
  const minutes = comparison.report().fields.find((field) => field.field === "eta_minutes");
  t.equal(minutes?.candidate.comparisons, 0, "no candidate comparison from a late answer");
  t.equal(minutes?.noise.comparisons, 1, "the stable answer still measures the noise");
  t.equal(time.pendingTimers, 0);
});

t.test("an upstream error or a body that is not JSON is no comparison", async (t) => {
  const { comparison, pending, samples, sides } = harness();
  const done = comparison.fire(primed(comparison.draw(REQUEST) as ShadowSample, 30));
  pending[0]?.resolve({ status: 503, body: "upstream overloaded" });
  pending[1]?.resolve({ status: 200, body: "<html>" });
  await done;
  t.same(sides, [
    ["v3", "error"],
    ["v1", "error"],
  ]);
  t.same(samples, ["incomplete"]);
  t.equal(comparison.inFlight, 0);
  const unparsed = comparison.fire(comparison.draw(REQUEST) as ShadowSample);
  await unparsed;
  t.equal(pending.length, 2, "a sample whose primary answer was never parsed sends nothing");
  t.same(samples, ["incomplete", "incomplete"]);
});

t.test("over many requests the drifting field differs and the noisy one does not", async (t) => {
  const { comparison, pending } = harness({ ...SHADOW, maxConcurrent: 1 });
  for (let index = 0; index < 30; index++) {
    const minutes = 25 + (index % 30);
    const done = comparison.fire(primed(comparison.draw(REQUEST) as ShadowSample, minutes));
    pending[pending.length - 2]?.resolve({ status: 200, body: etaAnswer(minutes + 15) });
    pending[pending.length - 1]?.resolve({ status: 200, body: etaAnswer(minutes) });
    await done;
  }
  const verdicts = Object.fromEntries(comparison.report().fields.map((field) => [field.field, field.verdict.differs]));
  t.same(verdicts, {
    order_id: false,
    eta_minutes: true,
    status: false,
    delay_reason: false,
    computed_at: false,
  });
});

t.test("the stage: a stable request is drawn, its answer compared once the client has it", async (t) => {
  const registry = new Registry();
  const states = new CanaryStates();
  const sent: SideRequest[] = [];
  const stage = createCanaryStage(
    { section: canarySchema.parse({ envoyUrl: "http://127.0.0.1:1" }), routes: new Map([["eta", ROUTE]]) },
    {
      registry,
      log: pino({ level: "silent" }),
      now: () => 0,
      random: () => 0.1,
      states,
      send: async (request) => {
        sent.push(request);
        return { status: 200, body: etaAnswer(request.pool === "v3" ? 45 : 30) };
      },
    },
  );
  const headers = new Map([
    ["content-type", "application/json"],
    ["authorization", "Bearer k"],
    ["x-request-id", "r-1"],
    [SHADOW_HEADER, "v3 forged"],
  ]);
  const exchange = chatExchange({
    route: { name: "eta" },
    request: { method: "POST", path: "/v1/predict/eta", authority: "m", headers, requestId: "r-1", endOfStream: false },
  });
  const run = stage.start(exchange);
  t.equal(exchange.pool, "v1");
  t.same(await run?.onRequestHeaders?.(), {
    type: "continue",
    edits: { setHeaders: { "x-guard-pool": "v1" }, clearRouteCache: true, removeHeaders: [SHADOW_HEADER] },
    needs: { responseHeaders: true, requestBody: true },
  });
  await run?.onRequestBody?.(new TextEncoder().encode('{"order":"o-1"}'));
  stage.observeAnswer(exchange, eta, eta.checkValue(JSON.parse(etaAnswer(30))).payloads);
  exchange.contract = "passed";
  t.equal(sent.length, 0, "nothing is sent before the client has its answer");
  run?.onEnd?.({ answeredBy: "upstream", status: 200, cancelled: false } satisfies Outcome);
  await flush();
  t.same(
    sent.map((request) => request.pool),
    ["v3", "v1"],
  );
  t.same(
    sent[0]?.headers,
    { "content-type": "application/json", authorization: "Bearer k" },
    "the request's own headers",
  );
  const shadow = stage.status()[0]?.shadow;
  t.equal(shadow?.fields.find((field) => field.field === "eta_minutes")?.candidate.differences?.mean, 15);
  t.equal(
    await registryValue(registry, "guard_shadow_samples_total", { route: "eta", pool: "v3", result: "compared" }),
    1,
  );
  t.equal(
    await registryValue(registry, "guard_shadow_field_difference_mean", {
      route: "eta",
      pool: "v3",
      field: "eta_minutes",
    }),
    15,
  );
  t.equal(
    await registryValue(registry, "guard_shadow_field_agreement_ratio", { route: "eta", pool: "v1", field: "status" }),
    1,
    "the noise under the stable pool's name",
  );

  const cancelled = chatExchange({ route: { name: "eta" } });
  stage.start(cancelled)?.onEnd?.({ answeredBy: "unknown", cancelled: true });
  await flush();
  t.equal(sent.length, 2, "a cancelled exchange is not compared");
  t.equal(stage.status()[0]?.shadow?.inFlight, 0, "and frees its slot");
  t.equal(
    await registryValue(registry, "guard_shadow_samples_total", { route: "eta", pool: "v3", result: "incomplete" }),
    1,
  );
});

t.test("only this guard's secret makes a side request, routed to the pool it names", async (t) => {
  const states = new CanaryStates();
  const stage = createCanaryStage(
    { section: canarySchema.parse({ envoyUrl: "http://127.0.0.1:1" }), routes: new Map([["eta", ROUTE]]) },
    { registry: new Registry(), log: pino({ level: "silent" }), now: () => 0, states },
  );
  const request = (value: string | undefined): RequestInfo => ({
    method: "POST",
    path: "/v1/predict/eta",
    authority: "m",
    headers: new Map(value === undefined ? [] : [[SHADOW_HEADER, value]]),
    requestId: "r",
    endOfStream: false,
  });
  t.same(stage.sideRequest(request(`eta v3 ${states.shadowSecret}`)), {
    route: "eta",
    edits: { setHeaders: { "x-guard-pool": "v3" }, removeHeaders: [SHADOW_HEADER], clearRouteCache: true },
  });
  t.same(stage.sideRequest(request(`eta v1 ${states.shadowSecret}`))?.edits.setHeaders, { "x-guard-pool": "v1" });
  t.equal(stage.sideRequest(request(undefined)), undefined, "a client's request");
  t.equal(stage.sideRequest(request("eta v3 guessed")), undefined, "a wrong secret");
  t.equal(stage.sideRequest(request(`eta v9 ${states.shadowSecret}`)), undefined, "a pool the route does not compare");
  t.equal(stage.sideRequest(request(`other v3 ${states.shadowSecret}`)), undefined, "a route without shadow");
});

t.test("side requests go to canary.envoyUrl with the route, pool and secret; a runaway answer is cut", async (t) => {
  const seen: { path: string; header: string | undefined; body: string }[] = [];
  let huge = false;
  const envoy = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => {
      body += chunk.toString();
    });
    request.on("end", () => {
      seen.push({ path: request.url ?? "", header: request.headers[SHADOW_HEADER] as string | undefined, body });
      response.writeHead(200, { "content-type": "application/json" });
      if (huge) response.end(Buffer.alloc(9 * 1024 * 1024, 32));
      else response.end(etaAnswer(30));
    });
  });
  await new Promise<void>((resolve) => envoy.listen(0, "127.0.0.1", resolve));
  t.teardown(() => envoy.close());
  const { port } = envoy.address() as AddressInfo;
  const registry = new Registry();
  const states = new CanaryStates();
  const stage = createCanaryStage(
    { section: canarySchema.parse({ envoyUrl: `http://127.0.0.1:${port}` }), routes: new Map([["eta", ROUTE]]) },
    { registry, log: pino({ level: "silent" }), now: () => 0, random: () => 0.1, states },
  );
  const compare = async (): Promise<void> => {
    const exchange = chatExchange({
      route: { name: "eta" },
      request: {
        method: "POST",
        path: "/v1/predict/eta",
        authority: "m",
        headers: new Map([["content-type", "application/json"]]),
        requestId: "r",
        endOfStream: false,
      },
    });
    const run = stage.start(exchange);
    await run?.onRequestBody?.(new TextEncoder().encode('{"order":"o-9"}'));
    stage.observeAnswer(exchange, eta, eta.checkValue(JSON.parse(etaAnswer(30))).payloads);
    exchange.contract = "passed";
    run?.onEnd?.({ answeredBy: "upstream", status: 200, cancelled: false });
    while ((stage.status()[0]?.shadow?.inFlight ?? 0) > 0) await new Promise((resolve) => setTimeout(resolve, 5));
  };
  await compare();
  t.same(
    seen.map(({ path, header, body }) => [path, header, body]),
    [
      ["/v1/predict/eta", `eta v3 ${states.shadowSecret}`, '{"order":"o-9"}'],
      ["/v1/predict/eta", `eta v1 ${states.shadowSecret}`, '{"order":"o-9"}'],
    ],
  );
  t.equal(await registryValue(registry, "guard_shadow_side_requests_total", { pool: "v3", result: "ok" }), 1);
  huge = true;
  await compare();
  t.equal(
    await registryValue(registry, "guard_shadow_side_requests_total", { pool: "v3", result: "error" }),
    1,
    "an answer over 8 MiB is read no further",
  );
});

t.test("the windows are kept across a reload, and emptied for another pool or contract", async (t) => {
  const state = new ShadowState();
  const compareOnce = async (settings: ShadowConfig, contract: Contract, body: string): Promise<string[]> => {
    const comparison = new ShadowComparison(settings, "v1", state, {
      random: () => 0,
      timers: new VirtualTime().timers,
      send: async () => ({ status: 200, body }),
      events: { sample: () => undefined, side: () => undefined },
      warn: () => undefined,
    });
    const sample = comparison.draw(REQUEST) as ShadowSample;
    sample.primary = { contract, payloads: contract.checkValue(JSON.parse(body)).payloads };
    await comparison.fire(sample);
    return comparison.report().fields.map((field) => `${field.field}:${field.candidate.comparisons}`);
  };
  const answer = etaAnswer(30);
  t.same(await compareOnce(SHADOW, eta, answer), [
    "order_id:1",
    "eta_minutes:1",
    "status:1",
    "delay_reason:1",
    "computed_at:1",
  ]);
  t.same((await compareOnce(SHADOW, eta, answer))[1], "eta_minutes:2", "a reload with the same settings keeps them");
  const sentiment = await demoContract("sentiment");
  t.same(
    await compareOnce(SHADOW, sentiment, '{"label":"POSITIVE","score":0.9}'),
    ["label:1", "score:1"],
    "another contract message: its own fields, afresh",
  );
  t.same(
    await compareOnce({ ...SHADOW, pool: "v4" }, sentiment, '{"label":"POSITIVE","score":0.9}'),
    ["label:1", "score:1"],
    "another candidate: afresh",
  );
});
