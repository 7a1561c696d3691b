// Who a request is, through a real Envoy 1.40: a client cannot raise its own priority class (the
// shipped Envoy config strips x-guard-priority before any filter, and the guard would not believe it
// on an untrusted route anyway), a verified source (the peer address Envoy reports as an ext_proc
// request attribute) can; and one tenant flooding a capacity-limited model in the same class takes
// only what two well-behaved tenants leave (deficit round robin on the tenant identity derives).
import { setTimeout as sleep } from "node:timers/promises";
import t from "tap";
import { metricSum } from "../../bench/metrics-text.js";
import { type Answer, defaultConfigWith, postFrom, stackFor, upstreamRequests } from "../helpers/e2e.js";

const CHAT_PATH = "/v1/chat/completions";
const BODY = { model: "demo", messages: [{ role: "user", content: "identity e2e" }] };
/** The model serves two requests at a time, each for 200 ms: 10 requests/s. */
const CAPACITY_PER_S = 10;
const MESSAGE_TIMEOUT_MS = 2_500;
/** Clients on this loopback address are the verified critical ones (an identity rule). */
const CRITICAL_SOURCE = "127.0.0.2";

t.test("identity through Envoy", async (t) => {
  const config = await defaultConfigWith({
    envoy: { messageTimeoutMs: MESSAGE_TIMEOUT_MS },
    identity: {
      priority: { rules: [{ attribute: "source.address", prefix: `${CRITICAL_SOURCE}:`, priority: "critical" }] },
    },
    admission: {
      // Two requests in flight in every class, each holding one cost unit (the route is not priced).
      requestWeight: 0,
      limit: { initial: 2, min: 2, max: 2 },
      // A round of deficit round robin serves one request per backlogged tenant, as it does with
      // priced requests, whose costs dwarf the default quantum.
      drrQuantum: 1,
      // A fixed 2 s wait (not a multiple of the 200 ms latency): every tenant stays backlogged.
      classes: { standard: { share: 1, maxWaitMs: 2_000, maxWaitLatencies: 1_000, maxQueue: 1_000 } },
    },
    routes: [{ name: "chat", match: { pathPrefix: CHAT_PATH }, admission: { enabled: true } }],
  });
  const stack = await stackFor(t, {
    guardConfig: config,
    messageTimeoutMs: MESSAGE_TIMEOUT_MS,
    demoArgs: { light: ["--capacity", "2", "--base-latency-ms", "200"] },
  });
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  const url = `${stack.url}${CHAT_PATH}`;

  t.test("a client's own critical claim is stripped; a verified source is critical", async (t) => {
    const spoofed: Answer[] = [];
    for (let i = 0; i < 5; i++)
      spoofed.push(
        await postFrom("127.0.0.1", url, BODY, { "x-guard-priority": "critical", authorization: "Bearer s" }),
      );
    const verified: Answer[] = [];
    for (let i = 0; i < 3; i++) verified.push(await postFrom(CRITICAL_SOURCE, url, BODY));
    t.same(
      [...spoofed, ...verified].map((answer) => answer.status),
      Array.from({ length: 8 }, () => 200),
    );
    const metrics = await guard.metrics();
    const classOf = (priority: string, source: string) =>
      metricSum(metrics, "guard_identity_priority_total", { route: "chat", priority, source });
    t.equal(classOf("standard", "route"), 5, "the claims were treated as standard: the route's class");
    t.equal(classOf("critical", "rule"), 3, "the peer address Envoy reported made these critical");
    t.equal(classOf("critical", "client_header"), 0);
    t.equal(
      metricSum(metrics, "guard_identity_ignored_total", { route: "chat" }),
      0,
      "the guard never saw the claims: Envoy stripped them before any filter",
    );
    t.equal(metricSum(metrics, "guard_admission_admitted_cost_total", { priority: "critical", route: "chat" }), 3);
    t.equal(metricSum(metrics, "guard_admission_admitted_cost_total", { priority: "standard", route: "chat" }), 5);
    const seen = await upstreamRequests(stack.light.url);
    t.notOk(
      seen.some((request) => "x-guard-priority" in request.headers),
      "the claim did not reach the model either",
    );
  });

  t.test("one tenant offering 10× its share takes only what two well-behaved tenants leave", async (t) => {
    const durationMs = 8_000;
    const share = CAPACITY_PER_S / 3;
    // Open loop: each tenant sends at its rate whatever the answers; the well-behaved ones ask for
    // 0.9 of a fair share, the greedy one for ten shares.
    const offered = { greedy: 10 * share, b: 0.9 * share, c: 0.9 * share };
    const started = performance.now();
    const sends = Object.entries(offered).map(async ([tenant, rate]) => {
      const answers: Promise<Answer>[] = [];
      for (let i = 0; i < Math.floor((rate * durationMs) / 1000); i++) {
        const wait = started + (i * 1000) / rate - performance.now();
        if (wait > 1) await sleep(wait);
        answers.push(postFrom("127.0.0.1", url, BODY, { authorization: `Bearer ${tenant}` }, 30_000));
      }
      const done = await Promise.all(answers);
      const statuses = done.map((answer) => answer.status);
      const shed = new Map<string, number>();
      for (const reason of done.map((answer) => answer.headers.get("x-guard-reason") ?? "")) {
        if (reason !== "") shed.set(reason, (shed.get(reason) ?? 0) + 1);
      }
      t.comment(`${tenant} shed: ${JSON.stringify(Object.fromEntries(shed))}`);
      return { tenant, sent: statuses.length, ok: statuses.filter((status) => status === 200).length, statuses };
    });
    const results = await Promise.all(sends);
    const byTenant = Object.fromEntries(results.map((result) => [result.tenant, result]));
    const greedy = byTenant.greedy!;
    const served = results.reduce((sum, result) => sum + result.ok, 0);
    t.comment(results.map(({ tenant, sent, ok }) => `${tenant}: ${ok}/${sent} served`).join(", "));
    for (const tenant of ["b", "c"]) {
      const { sent, ok } = byTenant[tenant]!;
      t.ok(ok >= 0.75 * sent, `${tenant}: ${ok} of ${sent} served despite the flood`);
    }
    t.ok(
      greedy.ok <= 0.5 * served,
      `greedy: ${greedy.ok} of the ${served} served, no more than the two others together (a fair third is ${Math.round(served / 3)})`,
    );
    t.ok(greedy.ok >= 0.2 * served, "and it got what they left: the model was not left idle");
    t.ok(
      greedy.statuses.every((status) => status === 200 || status === 429),
      "its excess was answered 429, nothing else",
    );
    t.ok(greedy.sent - greedy.ok > greedy.sent / 2, `${greedy.sent - greedy.ok} of its ${greedy.sent} shed`);
  });
});
