// The foundation through a real Envoy 1.40: client → Envoy → guard → demo model.
import { createHash } from "node:crypto";
import t from "tap";
import { metricSum } from "../../bench/metrics-text.js";
import { CHAT, defaultConfigWith, post, stackFor, upstreamRequests, upstreamServed } from "../helpers/e2e.js";

for (const transport of ["tcp", "uds"] as const) {
  t.test(`a request passes through Envoy and the guard (${transport})`, async (t) => {
    const stack = await stackFor(t, { transport });
    const body = JSON.stringify(CHAT);
    const answer = await post(`${stack.url}/v1/chat/completions`, body);
    t.equal(answer.status, 200, answer.text);
    t.equal(answer.headers.get("x-guard-route"), "chat", "client sees the guard's response header");
    t.equal(answer.headers.get("x-demo-pool"), "light");
    t.equal(
      answer.headers.get("x-demo-request-sha256"),
      createHash("sha256").update(body).digest("hex"),
      "request body reached the model unaltered",
    );
    t.equal((JSON.parse(answer.text) as { object: string }).object, "chat.completion");
    const seen = await upstreamRequests(stack.light.url);
    t.equal(seen.at(-1)?.headers["x-guard-route"], "chat", "upstream sees the guard's request header");
    const metrics = await stack.guard?.metrics();
    t.match(metrics, /guard_requests_total\{route="chat",answered_by="upstream",code_class="2xx"\} 1/);
  });
}

t.test("ext_proc streams end cleanly: no RST_STREAM for Node's rapid-reset guard to count", async (t) => {
  const stack = await stackFor(t);
  for (let i = 0; i < 40; i++) {
    const answer = await post(`${stack.url}/v1/chat/completions`, {
      ...CHAT,
      messages: [{ role: "user", content: `hello ${i}` }],
    });
    t.equal(answer.status, 200);
  }
  await fetch(`${stack.url}/__demo/stats`).then((response) => response.text());
  const stats = await (
    await fetch(`${stack.envoy.adminUrl}/stats?filter=^cluster\\.inference_guard\\.upstream_rq_(total|tx_reset)$`)
  ).text();
  t.match(stats, /upstream_rq_total: 4[01]/);
  t.match(stats, /upstream_rq_tx_reset: 0/, "Envoy closed every stream without a reset");
});

t.test("an unrouted path passes through untouched", async (t) => {
  const stack = await stackFor(t);
  const response = await fetch(`${stack.url}/__demo/stats`);
  t.equal(response.status, 200);
  t.equal(response.headers.get("x-guard-route"), null);
});

t.test("a client cannot pick the heavy pool or its own timeout", async (t) => {
  const stack = await stackFor(t);
  const response = await fetch(`${stack.url}/__demo/stats`, {
    headers: { "x-guard-tier": "heavy", "x-envoy-upstream-rq-timeout-ms": "1" },
  });
  t.equal(response.status, 200);
  t.equal(
    ((await response.json()) as { pool: string }).pool,
    "light",
    "Envoy dropped the client's tier header before routing",
  );
});

t.test("a guard reply reaches the client with status, headers and body", async (t) => {
  const config = await defaultConfigWith({
    routes: [
      {
        name: "chat",
        match: { pathPrefix: "/v1/chat/completions" },
        maintenance: { status: 503, retryAfterSeconds: 30, message: "rolling back" },
      },
    ],
  });
  const stack = await stackFor(t, { guardConfig: config });
  const answer = await post(`${stack.url}/v1/chat/completions`, CHAT);
  t.equal(answer.status, 503);
  t.equal(answer.headers.get("retry-after"), "30");
  t.equal(answer.headers.get("x-guard-reason"), "route.maintenance");
  t.equal(answer.headers.get("content-type"), "application/json");
  t.equal(answer.headers.get("cache-control"), "no-store");
  t.same(JSON.parse(answer.text), {
    error: {
      message: "Route in maintenance: rolling back",
      type: "server_error",
      code: "route.maintenance",
      param: null,
      route: "chat",
      retry_after_seconds: 30,
    },
  });
  t.same(await upstreamRequests(stack.light.url), [], "the upstream never saw it");
});

t.test("guard down, failure_mode_allow: true → the upstream still answers, and the guard counts it", async (t) => {
  const stack = await stackFor(t, { failureModeAllow: true });
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  await guard.process().stop("SIGKILL");
  for (let i = 0; i < 5; i++) {
    const answer = await post(`${stack.url}/v1/chat/completions`, CHAT);
    t.equal(answer.status, 200);
    t.equal(answer.headers.get("x-guard-route"), null, "unguarded");
  }
  t.equal(await upstreamServed(stack.light.url), 5, "the model served them");
  // A restarted guard reads Envoy's count of the requests it sent on while the guard was gone.
  await guard.restart();
  const metrics = await guard.metrics();
  t.equal(metricSum(metrics, "guard_envoy_unguarded_total", { reason: "stream_error" }), 5, "every one is exported");
  t.equal(metricSum(metrics, "guard_envoy_unguarded_total", {}), 5);
  t.equal(metricSum(metrics, "guard_envoy_stats_up", {}), 1);
  const status = (await (await fetch(`${guard.adminUrl}/api/status`)).json()) as {
    unguarded: { requests: number; byReason: Record<string, number> } | null;
  };
  t.match(status.unguarded, { requests: 5, byReason: { stream_error: 5 } }, "the status page shows them");
});

t.test("guard down, failure_mode_allow: false → a prompt 500, no hang", async (t) => {
  const stack = await stackFor(t, { failureModeAllow: false });
  await stack.guard?.process().stop("SIGKILL");
  for (let i = 0; i < 5; i++) {
    const answer = await post(`${stack.url}/v1/chat/completions`, CHAT);
    // Envoy's answer to an unreachable guard; waiting for the message_timeout would be a 504.
    t.equal(answer.status, 500, "answered at once with the connection-failure status");
  }
  t.same(await upstreamRequests(stack.light.url), [], "nothing unguarded reached the model");
  await stack.guard?.restart();
  const answer = await post(`${stack.url}/v1/chat/completions`, CHAT);
  t.equal(answer.status, 200, "a restarted guard serves again");
});

t.test("SIGTERM drains: in-flight requests complete, then the guard exits 0", async (t) => {
  const stack = await stackFor(t, { failureModeAllow: false });
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  const inFlight = Promise.all(
    [0, 1, 2].map(() => post(`${stack.url}/v1/chat/completions`, CHAT, { "x-demo-latency-ms": "1500" })),
  );
  await new Promise((resolve) => setTimeout(resolve, 400));
  const exitCode = guard.process().stop("SIGTERM", 15_000);
  const answers = await inFlight;
  for (const answer of answers) {
    t.equal(answer.status, 200);
    t.equal(
      answer.headers.get("x-guard-route"),
      "chat",
      "the response phase was still processed by the draining guard",
    );
  }
  t.equal(await exitCode, 0);
});
