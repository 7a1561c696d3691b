// Shadow comparison through the real Envoy: the eta route's stable pool (v1) answers every client;
// a sample of its requests is sent again by the guard, through Envoy, to the candidate (v3) and
// once more to v1. Both pools are non-deterministic: eta_minutes jitters by up to ±3 minutes from
// answer to answer, and computed_at is a fresh timestamp in each. A v3 that is the demo's eta_later
// (every ETA 15 minutes later, in range) differs on eta_minutes beyond that noise, and on nothing
// else; a v3 that is v1 with the same jitter differs on nothing. No client ever gets v3's answer,
// and none of the side answers enters the cache.
import { setTimeout as sleep } from "node:timers/promises";
import t, { type Test } from "tap";
import { metricSum } from "../../bench/metrics-text.js";
import type { CanaryRouteStatus } from "../../src/pipeline/canary/stage.js";
import { mapConcurrently, post, stackFor, upstreamRequests, upstreamServed } from "../helpers/e2e.js";
import { documentedRoutes, routingThePool } from "../helpers/rollout.js";

/** docs/rollout.md's Envoy route of the compared candidate. */
async function documentedShadowRoute(): Promise<Record<string, unknown>> {
  const [route] = await documentedRoutes("envoy-shadow-routes");
  if (route === undefined) throw new Error("docs/rollout.md shows no shadow route");
  return route;
}

const ETA = "/v1/predict/eta";

async function shadowOf(adminUrl: string): Promise<NonNullable<CanaryRouteStatus["shadow"]>> {
  const { routes } = (await (await fetch(`${adminUrl}/api/canary`)).json()) as { routes: CanaryRouteStatus[] };
  const shadow = routes[0]?.shadow;
  if (shadow == null) throw new Error("no shadow comparison in /api/canary");
  return shadow;
}

const JITTER = ["--eta-jitter-minutes", "3"];

/** The eta route compared with v3 on the heavy pool (`variant`), both pools jittering. */
async function shadowStack(t: Test, variant: string, cache = false) {
  return stackFor(t, {
    guardConfig: {
      ...(cache ? { cache: { maxBytes: 8 * 1024 * 1024 } } : {}),
      routes: [
        {
          name: "eta",
          match: { pathPrefix: ETA, methods: ["POST"] },
          contract: { message: "demo.v1.DeliveryEta", action: "enforce" },
          ...(cache ? { cache: { enabled: true } } : {}),
          canary: {
            stable: "v1",
            // Weight 0: v3 answers no client, only the guard's comparisons.
            candidates: [{ pool: "v3", weight: 0 }],
            shadow: { pool: "v3", sampleRate: 1, maxConcurrent: 4, timeoutMs: 5_000 },
          },
        },
      ],
    },
    editEnvoyConfig: routingThePool(await documentedShadowRoute()),
    demoArgs: { light: JITTER, heavy: ["--version", "v3", "--variant", variant, ...JITTER] },
  });
}

type Shadow = NonNullable<CanaryRouteStatus["shadow"]>;

/** The comparison once `count` of each kind were made and none is in flight (or 20 s passed). */
async function comparedAtLeast(adminUrl: string, count: number): Promise<Shadow> {
  const deadline = performance.now() + 20_000;
  for (;;) {
    const shadow = await shadowOf(adminUrl);
    const minutes = shadow.fields.find((field) => field.field === "eta_minutes");
    const done = (minutes?.candidate.comparisons ?? 0) >= count && (minutes?.noise.comparisons ?? 0) >= count;
    if ((done && shadow.inFlight === 0) || performance.now() > deadline) return shadow;
    await sleep(100);
  }
}

t.test("shadow comparison of v1 with a drifting v3 shows the drifting field, not the noisy ones", async (t) => {
  const stack = await shadowStack(t, "eta_later", true);
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  const bodies = Array.from({ length: 80 }, (_, index) => ({ order: `order-${index}` }));
  // Cacheable (x-guard-cache: allow), so a side answer that entered the cache would be served below.
  const cacheable = { "x-guard-cache": "allow" };
  const first = await mapConcurrently(bodies, 2, (body) => post(`${stack.url}${ETA}`, body, cacheable));
  t.ok(
    first.every((answer) => answer.status === 200 && answer.headers.get("x-model-version") === "v1"),
    "every client got v1's answer",
  );

  // The comparisons finish after the answers.
  const shadow = await comparedAtLeast(guard.adminUrl, 30);
  const fields = new Map(shadow.fields.map((field) => [field.field, field]));
  const minutes = fields.get("eta_minutes");
  t.ok((minutes?.candidate.comparisons ?? 0) >= 30, `${minutes?.candidate.comparisons} comparisons of eta_minutes`);
  t.equal(minutes?.verdict.differs, true, "eta_minutes differs beyond the noise");
  t.equal(minutes?.candidate.agreementRate, 0);
  const mean = minutes?.candidate.differences?.mean ?? 0;
  t.ok(Math.abs(mean - 15) < 2, `by ${mean.toFixed(2)} minutes on average (15, give or take the jitter)`);
  t.ok(
    (minutes?.noise.agreementRate ?? 1) < 0.5,
    `two v1 answers agree on eta_minutes in only ${minutes?.noise.agreementRate} of comparisons (the jitter)`,
  );
  t.ok(
    (minutes?.verdict.noiseThreshold ?? 0) >= 3 && (minutes?.verdict.noiseThreshold ?? 99) <= 6,
    `the noise's 99th percentile of |difference|: ${minutes?.verdict.noiseThreshold} minutes`,
  );
  const timestamp = fields.get("computed_at");
  t.equal(timestamp?.verdict.differs, false, "computed_at is noise: not reported");
  t.ok(
    (timestamp?.candidate.agreementRate ?? 1) < 0.5 && (timestamp?.noise.agreementRate ?? 1) < 0.5,
    `computed_at disagrees with v3 (${timestamp?.candidate.agreementRate}) as with v1 (${timestamp?.noise.agreementRate})`,
  );
  for (const name of ["order_id", "status"]) {
    t.equal(fields.get(name)?.candidate.agreementRate, 1, `${name} agrees`);
    t.equal(fields.get(name)?.verdict.differs, false);
  }

  const metrics = await guard.metrics();
  t.equal(metricSum(metrics, "guard_shadow_field_differs", { route: "eta", pool: "v3", field: "eta_minutes" }), 1);
  t.equal(metricSum(metrics, "guard_shadow_field_differs", { route: "eta", pool: "v3", field: "computed_at" }), 0);
  t.equal(metricSum(metrics, "guard_shadow_field_difference_mean", { pool: "v3", field: "eta_minutes" }), mean);
  const v3Asked = metricSum(metrics, "guard_shadow_side_requests_total", { pool: "v3", result: "ok" });
  t.ok(v3Asked >= 30, `${v3Asked} side requests answered by v3`);
  t.equal(await upstreamServed(stack.heavy.url), v3Asked, "v3 answered the guard's side requests, nothing else");
  t.equal(
    metricSum(metrics, "guard_requests_total", { route: "eta" }),
    bodies.length,
    "the side requests are not counted as clients' requests",
  );
  t.equal(metricSum(metrics, "guard_cache_stores_total", {}), bodies.length, "only the clients' answers were stored");

  const again = await mapConcurrently(bodies, 2, (body) => post(`${stack.url}${ETA}`, body, cacheable));
  t.ok(
    again.every((answer, index) => answer.headers.get("x-guard-cache") === "hit" && answer.text === first[index]?.text),
    "every repeat is a hit with the client's own v1 answer, never a side answer",
  );
  const page = await (await fetch(`${guard.adminUrl}/`)).text();
  t.match(page, /<tr data-route="eta" data-field="eta_minutes" data-state="differs">/, "the status page shows it");
  t.match(page, /<tr data-route="eta" data-field="computed_at" data-state="within_noise">/);
});

t.test("a v3 that only jitters as v1 does differs on no field", async (t) => {
  const stack = await shadowStack(t, "v1");
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  const bodies = Array.from({ length: 80 }, (_, index) => ({ order: `order-${index}` }));
  await mapConcurrently(bodies, 2, (body) => post(`${stack.url}${ETA}`, body));
  const shadow = await comparedAtLeast(guard.adminUrl, 30);
  const minutes = shadow.fields.find((field) => field.field === "eta_minutes");
  t.ok((minutes?.candidate.comparisons ?? 0) >= 30, `${minutes?.candidate.comparisons} comparisons`);
  t.ok(
    (minutes?.candidate.agreementRate ?? 1) < 0.5,
    `eta_minutes disagrees exactly in ${(1 - (minutes?.candidate.agreementRate ?? 1)).toFixed(2)} of comparisons`,
  );
  t.same(
    shadow.fields.filter((field) => field.verdict.differs).map((field) => field.field),
    [],
    "but never beyond the noise",
  );
});

t.test("a client cannot pass for the guard's side request", async (t) => {
  const stack = await shadowStack(t, "eta_later");
  // sampleRate 1, but every request below is a forgery the guard must not take for its own.
  const answers = await mapConcurrently(Array.from({ length: 10 }), 2, () =>
    post(`${stack.url}${ETA}`, { order: "o" }, { "x-guard-shadow": "eta v3 0123456789abcdef0123456789abcdef" }),
  );
  t.ok(
    answers.every((answer) => answer.headers.get("x-model-version") === "v1"),
    "a forged x-guard-shadow is an ordinary request: the stable pool answers",
  );
  // The guard's own side requests (sampleRate 1) reach both pools: their x-guard-shadow is removed too.
  const seen = [...(await upstreamRequests(stack.light.url)), ...(await upstreamRequests(stack.heavy.url))];
  t.ok(seen.length >= 10);
  t.ok(
    seen.every((request) => request.headers["x-guard-shadow"] === undefined),
    "no x-guard-shadow, forged or the guard's own, reached a model",
  );
});
