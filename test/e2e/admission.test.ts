// Admission control, load shedding and the circuit breaker through a real Envoy 1.40, against a
// demo model that serves two requests at a time. The budget is pinned to two cost units (one per
// request: the route is not priced by complexity) so overload is certain however slow the machine.
import { setTimeout as sleep } from "node:timers/promises";
import t from "tap";
import { metricSum } from "../../bench/metrics-text.js";
import { waitUntil } from "../../src/devstack/process.js";
import { type Answer, defaultConfigWith, postFrom, stackFor, upstreamServed } from "../helpers/e2e.js";

const CHAT_PATH = "/v1/chat/completions";
const BODY = { model: "demo", messages: [{ role: "user", content: "admission e2e" }] };
/** Shorter than the time critical requests spend queued below: the guard must extend it. */
const MESSAGE_TIMEOUT_MS = 300;
/** The loopback address each class's clients send from. */
const SOURCES = { critical: "127.0.0.2", standard: "127.0.0.4", sheddable: "127.0.0.3" } as const;

t.test("admission through Envoy", async (t) => {
  const config = await defaultConfigWith({
    envoy: { messageTimeoutMs: MESSAGE_TIMEOUT_MS },
    admission: {
      limit: { initial: 2, min: 2, max: 2 },
      // Fixed waits (maxWaitLatencies far above any wait): the test times its queue against them.
      classes: {
        critical: { maxWaitMs: 10_000, maxWaitLatencies: 1_000 },
        standard: { maxWaitMs: 200, maxWaitLatencies: 1_000 },
        sheddable: { maxWaitMs: 100, maxWaitLatencies: 1_000, maxQueue: 4 },
      },
      circuit: { windowMs: 2_000, buckets: 4, minRequests: 5, failureRatio: 0.5, openMs: 1_000, halfOpenProbes: 2 },
    },
    // The class comes from the client's source address, which Envoy reports and the client cannot
    // forge (a client's own x-guard-priority is stripped by Envoy).
    identity: {
      priority: {
        rules: Object.entries(SOURCES).map(([priority, address]) => ({
          attribute: "source.address",
          prefix: `${address}:`,
          priority,
        })),
      },
    },
    routes: [{ name: "chat", match: { pathPrefix: CHAT_PATH }, admission: { enabled: true } }],
  });
  const stack = await stackFor(t, {
    guardConfig: config,
    messageTimeoutMs: MESSAGE_TIMEOUT_MS,
    demoArgs: { light: ["--capacity", "2", "--base-latency-ms", "400"] },
  });
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  const send = (priority: keyof typeof SOURCES, headers: Record<string, string> = {}): Promise<Answer> =>
    postFrom(SOURCES[priority], `${stack.url}${CHAT_PATH}`, BODY, headers, 30_000);

  t.test("overload sheds sheddable traffic with 429 while critical requests pass", async (t) => {
    const sheddable = Array.from({ length: 20 }, () => send("sheddable"));
    await sleep(50);
    const critical = Array.from({ length: 6 }, () => send("critical"));
    // Mid-burst: requests are in flight and critical ones are queued.
    await sleep(150);
    const during = await guard.metrics();
    t.equal(metricSum(during, "guard_admission_limit_cost", { pool: "chat" }), 2, "limit gauge");
    t.ok(
      metricSum(during, "guard_admission_inflight_cost", { pool: "chat" }) > 0,
      "in-flight gauge shows admitted work",
    );
    t.ok(
      metricSum(during, "guard_admission_queued", { pool: "chat", priority: "critical" }) > 0,
      "critical requests are queued",
    );

    const shedAnswers = await Promise.all(sheddable);
    const criticalAnswers = await Promise.all(critical);
    t.same(
      criticalAnswers.map((answer) => answer.status),
      [200, 200, 200, 200, 200, 200],
      "every critical request was served",
    );
    const shed = shedAnswers.filter((answer) => answer.status !== 200);
    t.ok(shed.length >= 10, `${shed.length} of 20 sheddable requests shed`);
    for (const answer of shed) {
      t.equal(answer.status, 429);
      t.match(answer.headers.get("retry-after"), /^[1-9][0-9]*$/, "Retry-After in whole seconds");
      t.match(answer.headers.get("retry-after-ms"), /^[1-9][0-9]*$/, "and the same wait in ms");
      t.match(answer.headers.get("x-guard-reason"), /^shed\.(overload|queue_full|queue_timeout)$/);
      t.equal(answer.headers.get("content-type"), "application/json", "an OpenAI endpoint: the OpenAI error shape");
      t.match(JSON.parse(answer.text), {
        error: {
          message: /: a sheddable request was not admitted; retry after ([1-9][0-9]* ms|[1-9][0-9.]* s)$/,
          type: "rate_limit_error",
          code: answer.headers.get("x-guard-reason"),
          param: null,
          priority: "sheddable",
        },
      });
    }

    const after = await guard.metrics();
    const shedCounted = ["shed.overload", "shed.queue_full", "shed.queue_timeout"].reduce(
      (sum, reason) => sum + metricSum(after, "guard_shed_total", { reason, priority: "sheddable", route: "chat" }),
      0,
    );
    t.equal(shedCounted, shed.length, "guard_shed_total counts every shed answer by reason, priority and route");
    t.equal(metricSum(after, "guard_admission_inflight_cost", { pool: "chat" }), 0, "all cost returned");
    t.notMatch(after, /guard_shed_total\{[^}]*priority="critical"/, "no critical request was shed");
  });

  t.test("a queued request outlives Envoy's message_timeout and gets its proper answer", async (t) => {
    // Two slots, 400 ms each: the last of eight critical requests waits well over 300 ms.
    const answers = await Promise.all(Array.from({ length: 8 }, () => send("critical")));
    t.same(
      answers.map((answer) => answer.status),
      Array.from({ length: 8 }, () => 200),
      "all answered by the model, none by Envoy's timeout",
    );
    const metrics = await guard.metrics();
    const admitted = { priority: "critical", result: "admitted" };
    const total = metricSum(metrics, "guard_admission_queue_wait_seconds_count", admitted);
    const withinTimeout = metricSum(metrics, "guard_admission_queue_wait_seconds_bucket", { le: "0.5", ...admitted });
    t.ok(
      total - withinTimeout > 0,
      `${total - withinTimeout} admitted critical requests waited longer than 500 ms, past the 300 ms message_timeout`,
    );
  });

  t.test("an upstream 5xx storm opens the circuit and it closes after recovery", async (t) => {
    // Let the earlier subtests' successes leave the 2 s window.
    await sleep(2_100);
    const failing: Answer[] = [];
    for (let i = 0; i < 12; i++)
      failing.push(await send("standard", { "x-demo-status": "500", "x-demo-latency-ms": "0" }));
    const upstreamErrors = failing.filter((answer) => answer.status === 500);
    const fastFails = failing.filter((answer) => answer.status === 503);
    t.ok(upstreamErrors.length >= 5, `${upstreamErrors.length} upstream 500s before the circuit opened`);
    t.ok(fastFails.length > 0, `${fastFails.length} answered 503 by the guard`);
    for (const answer of fastFails) {
      t.equal(answer.headers.get("x-guard-reason"), "shed.circuit_open");
      t.match(answer.headers.get("retry-after"), /^[1-9][0-9]*$/);
      t.match(JSON.parse(answer.text), {
        error: { type: "server_error", code: "shed.circuit_open", param: null, priority: "standard" },
      });
    }
    t.match(await guard.metrics(), /guard_circuit_state\{pool="chat"\} 2/, "open");
    // While open, even critical traffic fails fast without reaching the model.
    const servedBefore = await upstreamServed(stack.light.url);
    const whileOpen = await send("critical");
    t.equal(whileOpen.status, 503);
    t.equal(await upstreamServed(stack.light.url), servedBefore, "the failing upstream was spared");

    // The upstream recovers: after openMs, probes succeed and the circuit closes.
    await waitUntil(
      "circuit closed again",
      async () =>
        (await send("standard")).status === 200 && /guard_circuit_state\{pool="chat"\} 0/.test(await guard.metrics()),
      15_000,
    );
    const healthy = await Promise.all([send("standard"), send("critical")]);
    t.same(
      healthy.map((answer) => answer.status),
      [200, 200],
      "traffic flows again",
    );
    t.ok(
      metricSum(await guard.metrics(), "guard_shed_total", {
        reason: "shed.circuit_open",
        priority: "standard",
        route: "chat",
      }) > 0,
    );
  });
});
