// Complexity routing through a real Envoy 1.40: heavy requests reach the heavy pool and light ones
// the light pool (Envoy re-selects the route on the guard's x-guard-tier), the timeout the guard
// computes reaches the router and Envoy enforces it, unreadable bodies still pass (scored by size
// and counted), the online latency model reports after traffic, and the output estimate learns the
// demo's reported completion tokens while admission counts the real cost. One stack for the file.
import t from "tap";
import { metricSum } from "../../bench/metrics-text.js";
import { defaultConfigWith, post, type SeenRequest, stackFor, upstreamRequests } from "../helpers/e2e.js";

type JsonObject = Record<string, unknown>;

// The prior alone predicts (minSamples is out of reach), so every timeout is known in advance:
// predicted = 100 ms + 1000 ms per 1000 output tokens; timeout = 2 × predicted within [300, 5000].
const COMPLEXITY = {
  enabled: true,
  timeout: { factor: 2, floorMs: 300, ceilingMs: 5_000 },
  model: {
    prior: { baseMs: 100, msPerInputKToken: 0, msPerOutputKToken: 1_000, msPerOtherMB: 0 },
    minSamples: 1_000_000,
  },
  // Bodies above 64 KiB are scored by their length without being parsed.
  maxBodyBytes: 65_536,
  // The output size is learned after three reported answers, each new one weighing 1/4: the
  // timeouts above hold (the requests before the third name their max_tokens; the 300 ms one asks
  // for 1 token, which the learned size cannot exceed), and convergence takes a few dozen requests.
  output: { minSamples: 3, memory: 4 },
};

const chat = (content: string, maxTokens: number): JsonObject => ({
  model: "demo",
  messages: [{ role: "user", content }],
  max_tokens: maxTokens,
});

/** Streamed answers in the convergence test: with memory 4, the long answers' weight falls to 0.75^24 ≈ 0.1%. */
const ANSWERS = 24;
const LAST_FEW = 4;

let sequence = 0;
/** A marker per request so the upstream's record of it can be found among the others. */
function marked(): Record<string, string> {
  return { "x-test-request": String(++sequence) };
}

async function seenUpstream(poolUrl: string, headers: Record<string, string>): Promise<SeenRequest | undefined> {
  return (await upstreamRequests(poolUrl)).find((seen) => seen.headers["x-test-request"] === headers["x-test-request"]);
}

t.test("complexity routing, timeouts and fallbacks through Envoy", async (t) => {
  const base = await defaultConfigWith({});
  // The usage stage reads every non-streamed answer's usage, not only the ones another stage buffers:
  // the output estimate and the latency model learn from reported completion tokens only.
  const routes = (base.routes as JsonObject[]).map((route) =>
    route.name === "chat" ? { ...route, complexity: COMPLEXITY, usage: { countBodies: true } } : route,
  );
  const stack = await stackFor(t, { guardConfig: { ...base, routes } });
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  const url = `${stack.url}/v1/chat/completions`;

  t.test("a light request lands on the light pool with its computed timeout", async (t) => {
    const headers = marked();
    const answer = await post(url, chat("What is the capital of France?", 500), headers);
    t.equal(answer.status, 200, answer.text);
    t.equal(answer.headers.get("x-demo-pool"), "light");
    const seen = await seenUpstream(stack.light.url, headers);
    t.equal(seen?.headers["x-guard-tier"], "light");
    // 100 + 1000 × 500/1000 = 600 ms predicted, × 2.
    // The router consumes the guard's x-envoy-upstream-rq-timeout-ms and tells the upstream the
    // timeout it applies in x-envoy-expected-rq-timeout-ms.
    t.equal(seen?.headers["x-envoy-expected-rq-timeout-ms"], "1200", "the router applied the guard's timeout");
    t.equal(seen?.headers["x-envoy-upstream-rq-timeout-ms"], undefined, "consumed by the router");
  });

  t.test("a large max_tokens lands on the heavy pool, its timeout at the ceiling", async (t) => {
    const headers = marked();
    // Cost 4 × 4000 output tokens ≥ 8000 (the default heavy tier).
    const answer = await post(url, chat("Write a long story.", 4_000), headers);
    t.equal(answer.status, 200, answer.text);
    t.equal(answer.headers.get("x-demo-pool"), "heavy");
    const seen = await seenUpstream(stack.heavy.url, headers);
    t.equal(seen?.headers["x-guard-tier"], "heavy");
    t.equal(seen?.headers["x-envoy-expected-rq-timeout-ms"], "5000");
    t.equal(await seenUpstream(stack.light.url, headers), undefined, "the light pool never saw it");
  });

  t.test("a long prompt lands on the heavy pool", async (t) => {
    const headers = marked();
    const prompt = "Summarise the following meeting notes carefully. ".repeat(1_200);
    const answer = await post(url, chat(prompt, 16), headers);
    t.equal(answer.status, 200, answer.text);
    t.equal(answer.headers.get("x-demo-pool"), "heavy");
    t.equal((await seenUpstream(stack.heavy.url, headers))?.headers["x-guard-tier"], "heavy");
  });

  t.test("Envoy enforces the guard's timeout: a slow upstream gets 504 at about the timeout", async (t) => {
    const headers = { ...marked(), "x-demo-latency-ms": "20000" };
    // max_tokens 1: 101 ms predicted × 2 is under the floor, so the timeout is 300 ms.
    const answer = await post(url, chat("quick question", 1), headers, 30_000);
    t.equal(answer.status, 504, answer.text);
    // Only a timeout shorter than the upstream's 20 s yields this 504: the route's own is 60 s.
    t.equal(answer.text, "upstream request timeout");
    t.equal((await seenUpstream(stack.light.url, headers))?.headers["x-envoy-expected-rq-timeout-ms"], "300");
  });

  t.test("bodies the guard cannot read still pass, scored by size and counted", async (t) => {
    const before = await guard.metrics();
    const bodies: Array<{ reason: string; body: string; pool: "light" | "heavy" }> = [
      { reason: "non_json", body: "this is not JSON at all", pool: "light" },
      { reason: "truncated", body: '{"model":"demo","messages":[{"role":"user","content":"hel', pool: "light" },
      { reason: "too_deep", body: `{"model":"demo","messages":${"[".repeat(200)}${"]".repeat(200)}}`, pool: "light" },
      // 128 KiB scored at 256 cost units per KiB: heavy by size alone.
      { reason: "too_large", body: JSON.stringify(chat("x".repeat(128 * 1024), 16)), pool: "heavy" },
    ];
    for (const { reason, body, pool } of bodies) {
      const headers = marked();
      const answer = await post(url, body, headers);
      t.equal(answer.headers.get("x-demo-pool"), pool, `${reason}: answered by the ${pool} pool`);
      t.equal(answer.status, reason === "too_large" ? 200 : 400, `${reason}: the upstream's own verdict`);
      const seen = await seenUpstream(pool === "heavy" ? stack.heavy.url : stack.light.url, headers);
      t.equal(seen?.headers["x-guard-tier"], pool, `${reason}: tiered by size`);
      t.ok(Number(seen?.headers["x-envoy-expected-rq-timeout-ms"]) >= 300, `${reason}: still given a timeout`);
    }
    const after = await guard.metrics();
    for (const { reason } of bodies) {
      const labels = { route: "chat", reason };
      t.equal(
        metricSum(after, "guard_complexity_estimate_fallbacks_total", labels) -
          metricSum(before, "guard_complexity_estimate_fallbacks_total", labels),
        1,
        reason,
      );
    }
    t.equal(metricSum(after, "guard_stage_errors_total"), 0, "no stage failed");
  });

  t.test("cost, tier and the online latency model are exported after traffic", async (t) => {
    const metrics = await guard.metrics();
    t.ok(metricSum(metrics, "guard_complexity_tier_decisions_total", { route: "chat", tier: "heavy" }) >= 3);
    t.ok(metricSum(metrics, "guard_complexity_tier_decisions_total", { route: "chat", tier: "light" }) >= 4);
    t.ok(metricSum(metrics, "guard_request_cost_count", { route: "chat", tier: "heavy" }) >= 3);
    t.ok(metricSum(metrics, "guard_estimated_input_tokens_count", { route: "chat", tier: "heavy" }) >= 1);
    // Completed 2xx requests teach the model; the 504 and the 400s do not.
    t.ok(metricSum(metrics, "guard_complexity_model_updates_total", { route: "chat", result: "fitted" }) >= 4);
    t.ok(metricSum(metrics, "guard_complexity_model_updates_total", { route: "chat", result: "skipped_status" }) >= 3);
    t.ok(metricSum(metrics, "guard_complexity_latency_ratio_count", { route: "chat" }) >= 4);
    for (const feature of ["intercept", "input_ktokens", "output_ktokens", "images", "tensor_mb", "other_mb"]) {
      t.match(
        metrics,
        new RegExp(`guard_complexity_model_coefficient\\{route="chat",feature="${feature}"\\} -?[0-9.e+-]+`),
        feature,
      );
    }
    t.ok(
      metricSum(metrics, "guard_complexity_model_residual_variance", { route: "chat" }) > 0,
      "residual variance is measured",
    );
    t.equal(metricSum(metrics, "guard_complexity_model_fitted", { route: "chat" }), 0, "still on the prior");
  });

  t.test("the output estimate converges on the completion tokens the demo model reports", async (t) => {
    const estimate = async () =>
      metricSum(await guard.metrics(), "guard_complexity_output_tokens_estimate", { route: "chat" });
    const before = await guard.metrics();
    const learnedBefore = await estimate();
    // Streamed, with no max_tokens: the demo answers up to its default of 16 tokens and reports them
    // in the usage event; the guard follows each stream to its end.
    const reported: number[] = [];
    const estimates: number[] = [];
    let lastFew = before;
    for (let i = 0; i < ANSWERS; i++) {
      if (i === ANSWERS - LAST_FEW) lastFew = await guard.metrics();
      const answer = await post(url, {
        model: "demo",
        messages: [{ role: "user", content: `convergence ${i}: what changed in the release?` }],
        stream: true,
        stream_options: { include_usage: true },
      });
      t.equal(answer.status, 200);
      const usage = answer.text
        .split("\n\n")
        .filter((event) => event.startsWith("data: {"))
        .map((event) => JSON.parse(event.slice("data: ".length)) as { usage?: { completion_tokens: number } | null })
        .find((event) => event.usage !== undefined && event.usage !== null)?.usage;
      if (usage === undefined || usage === null) throw new Error(`no usage event in ${answer.text}`);
      reported.push(usage.completion_tokens);
      estimates.push(await estimate());
    }
    const after = await guard.metrics();
    const recent = reported.slice(-8);
    const demoMean = recent.reduce((sum, tokens) => sum + tokens, 0) / recent.length;
    const learned = estimates.at(-1) ?? 0;
    t.comment(`estimate ${learnedBefore.toFixed(1)} → ${estimates.map((value) => value.toFixed(1)).join(" → ")}`);
    t.comment(`demo reported ${reported.join(", ")} completion tokens (mean of the last 8: ${demoMean.toFixed(1)})`);
    t.ok(
      learnedBefore > 4 * demoMean,
      `before: ${learnedBefore.toFixed(1)} tokens per answer (the default, or the long answers above)`,
    );
    t.ok(
      Math.abs(learned - demoMean) <= 0.25 * demoMean,
      `after ${ANSWERS} answers: ${learned.toFixed(1)} tokens, the demo's ${demoMean.toFixed(1)}`,
    );
    const delta = (name: string, labels: Record<string, string>) =>
      metricSum(after, name, labels) - metricSum(before, name, labels);
    t.equal(delta("guard_complexity_output_updates_total", { route: "chat", result: "learned" }), ANSWERS);
    t.equal(
      delta("guard_complexity_model_updates_total", { route: "chat", result: "fitted" }),
      ANSWERS,
      "the latency model learns from each stream's whole generation",
    );
    t.equal(delta("guard_complexity_model_updates_total", { route: "chat", result: "skipped_streamed" }), 0);
    t.ok(
      delta("guard_admission_released_cost_total", { route: "chat", basis: "actual" }) > 0,
      "admission counts the real cost of the reported answers",
    );
    t.equal(delta("guard_admission_released_cost_total", { route: "chat", basis: "estimate" }), 0);
    t.equal(delta("guard_admission_cost_ratio_count", { route: "chat" }), ANSWERS);
    // Priced at the learned size, the last answers cost about what was estimated (the first ones,
    // priced at ~500 output tokens, cost a few percent of it).
    const ratioBelow = (le: string) =>
      metricSum(after, "guard_admission_cost_ratio_bucket", { route: "chat", le }) -
      metricSum(lastFew, "guard_admission_cost_ratio_bucket", { route: "chat", le });
    t.equal(ratioBelow("1.5") - ratioBelow("0.67"), LAST_FEW, "the last answers: real ÷ estimated cost in (0.67, 1.5]");
  });
});
