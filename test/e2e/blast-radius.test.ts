// Admission domains and the upstream-only circuit through the real Envoy 1.40, with the embedded
// default config: each route (and each tier of a priced route) is its own domain, so one model in a
// 5xx storm never sheds another model's traffic; and timeouts (Envoy's own 504, at the upstream
// timeout the complexity stage sets) lower the limit without tripping the circuit.
import t from "tap";
import { metricSum } from "../../bench/metrics-text.js";
import { type Answer, defaultConfigWith, mapConcurrently, post, stackFor } from "../helpers/e2e.js";

const CIRCUIT = { windowMs: 5_000, buckets: 5, minRequests: 5, failureRatio: 0.5, openMs: 30_000 };

const chat = (content: string) => ({ model: "demo", messages: [{ role: "user", content }] });

t.test("a pool in a 5xx storm never sheds another pool's traffic", async (t) => {
  const defaults = await defaultConfigWith({});
  const stack = await stackFor(t, {
    guardConfig: { ...defaults, admission: { ...(defaults.admission as object), circuit: CIRCUIT } },
  });
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  const storm = (index: number): Promise<Answer> =>
    post(`${stack.url}/v1/predict/sentiment`, { text: `storm ${index}` }, { "x-demo-status": "500" });
  const healthy = (index: number): Promise<Answer> =>
    post(`${stack.url}/v1/chat/completions`, chat(`blast radius ${index}`));

  const stormed = await mapConcurrently([...Array(20).keys()], 4, storm);
  const stormStatuses = stormed.map((answer) => answer.status);
  t.ok(stormStatuses.includes(503), `the failing pool's circuit opened (statuses ${stormStatuses.join(" ")})`);
  const metrics = await guard.metrics();
  t.equal(metricSum(metrics, "guard_circuit_state", { pool: "sentiment" }), 2, "sentiment's circuit open");
  t.equal(metricSum(metrics, "guard_circuit_state", { pool: "chat/light" }), 0, "chat's circuit closed");

  // The storm goes on while the healthy model serves.
  const [answers] = await Promise.all([
    mapConcurrently([...Array(30).keys()], 4, healthy),
    mapConcurrently([...Array(20).keys()], 2, (index) => storm(100 + index)),
  ]);
  t.same(
    answers.map((answer) => answer.status),
    answers.map(() => 200),
    "every chat request answered by its healthy model",
  );
  t.equal(
    metricSum(await guard.metrics(), "guard_shed_total", { route: "chat" }),
    0,
    "no answer from the guard on the healthy pool",
  );
});

t.test("timeouts lower the limit and never open the circuit", async (t) => {
  const defaults = await defaultConfigWith({});
  // The chat route with a 250 ms upstream timeout (factor 1, clamped to [250, 250]).
  const routes = (defaults.routes as Record<string, unknown>[]).map((route) =>
    route.name === "chat"
      ? { ...route, complexity: { enabled: true, timeout: { factor: 1, floorMs: 250, ceilingMs: 250 } } }
      : route,
  );
  const stack = await stackFor(t, {
    guardConfig: { ...defaults, routes, admission: { ...(defaults.admission as object), circuit: CIRCUIT } },
  });
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  const send = (index: number, headers: Record<string, string> = {}) =>
    post(`${stack.url}/v1/chat/completions`, chat(`timeouts ${index}`), headers);

  // Quick answers first, one at a time: the limit learns the upstream's unloaded latency, without
  // which a timeout's lower bound would tell it nothing.
  const quick = await mapConcurrently([...Array(20).keys()], 1, (index) => send(index));
  t.same(new Set(quick.map((answer) => answer.status)), new Set([200]));
  const limitBefore = metricSum(await guard.metrics(), "guard_admission_limit_cost", { pool: "chat/light" });

  const slow = await mapConcurrently([...Array(30).keys()], 3, (index) =>
    send(100 + index, { "x-demo-latency-ms": "1500" }),
  );
  const timedOut = slow.filter((answer) => answer.status === 504).length;
  t.ok(timedOut >= 5, `${timedOut} answered 504 by Envoy at the upstream timeout`);
  const rest = slow.filter((answer) => answer.status !== 504);
  t.same(
    rest.filter((answer) => answer.status !== 429 || !answer.headers.get("x-guard-reason")?.startsWith("shed.")),
    [],
    `the other ${rest.length} shed with 429 as the limit fell`,
  );
  const metrics = await guard.metrics();
  t.equal(metricSum(metrics, "guard_circuit_state", { pool: "chat/light" }), 0, "a slow upstream: circuit closed");
  const limitAfter = metricSum(metrics, "guard_admission_limit_cost", { pool: "chat/light" });
  t.ok(limitAfter < limitBefore, `the limit fell: ${limitBefore} → ${limitAfter}`);
  t.equal((await send(999)).status, 200, "a quick answer is admitted and served");
});
