// Shadow comparison through the real Envoy: the eta route's stable pool (v1) answers every client;
// a sample of its requests is sent again by the guard, through Envoy, to the candidate (v3, the
// demo's eta_later: every ETA 15 minutes later, in range) and once more to v1. Field by field, the
// drifting eta_minutes differs beyond the noise; computed_at, a fresh timestamp in every answer,
// differs as much between two v1 answers and is not reported; the other fields agree. No client
// ever gets v3's answer, and none of the side answers enters the cache.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import t from "tap";
import { parse, stringify } from "yaml";
import { metricSum } from "../../bench/metrics-text.js";
import { PROJECT_ROOT } from "../../src/devstack/envoy.js";
import type { CanaryRouteStatus } from "../../src/pipeline/canary/stage.js";
import { mapConcurrently, post, stackFor, upstreamRequests, upstreamServed } from "../helpers/e2e.js";

// biome-ignore lint/suspicious/noExplicitAny: Envoy's config is walked by known paths; a wrong one throws
type Doc = Record<string, any>;

const ETA = "/v1/predict/eta";

/** docs/rollout.md's Envoy route of the compared candidate. */
async function documentedShadowRoute(): Promise<Record<string, unknown>> {
  const text = await readFile(join(PROJECT_ROOT, "docs", "rollout.md"), "utf8");
  const block = /^```yaml envoy-shadow-routes\n([\s\S]*?)^```/m.exec(text)?.[1];
  const [route] = (block === undefined ? [] : parse(block)) as Record<string, unknown>[];
  if (route === undefined) throw new Error("docs/rollout.md: no envoy-shadow-routes block");
  return route;
}

/** The documented candidate route first in Envoy's table, its cluster renamed to the heavy demo pool (v3). */
function routingThePool(candidateRoute: Record<string, unknown>): (yaml: string) => string {
  return (yaml) => {
    const config = parse(yaml) as { static_resources: { listeners: Doc[] } };
    const manager = config.static_resources.listeners[0]?.filter_chains[0].filters[0].typed_config;
    const routes = manager?.route_config.virtual_hosts[0].routes as unknown[] | undefined;
    if (routes === undefined) throw new Error("envoy.yaml: the route table moved");
    routes.unshift({ ...candidateRoute, route: { ...(candidateRoute.route as object), cluster: "model_heavy" } });
    return stringify(config);
  };
}

async function shadowOf(adminUrl: string): Promise<NonNullable<CanaryRouteStatus["shadow"]>> {
  const { routes } = (await (await fetch(`${adminUrl}/api/canary`)).json()) as { routes: CanaryRouteStatus[] };
  const shadow = routes[0]?.shadow;
  if (shadow == null) throw new Error("no shadow comparison in /api/canary");
  return shadow;
}

t.test("shadow comparison of v1 with v3 shows the drifting field, not the noisy one", async (t) => {
  const stack = await stackFor(t, {
    guardConfig: {
      cache: { maxBytes: 8 * 1024 * 1024 },
      routes: [
        {
          name: "eta",
          match: { pathPrefix: ETA, methods: ["POST"] },
          contract: { message: "demo.v1.DeliveryEta", action: "enforce" },
          cache: { enabled: true },
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
    demoArgs: { heavy: ["--version", "v3", "--variant", "eta_later"] },
  });
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

  // The comparisons finish after the answers: wait for 30 of each kind.
  const deadline = performance.now() + 20_000;
  let shadow = await shadowOf(guard.adminUrl);
  const compared = () => shadow.fields.find((field) => field.field === "eta_minutes");
  while (
    ((compared()?.candidate.comparisons ?? 0) < 30 ||
      (compared()?.noise.comparisons ?? 0) < 30 ||
      shadow.inFlight > 0) &&
    performance.now() < deadline
  ) {
    await sleep(100);
    shadow = await shadowOf(guard.adminUrl);
  }
  const fields = new Map(shadow.fields.map((field) => [field.field, field]));
  const minutes = fields.get("eta_minutes");
  t.ok((minutes?.candidate.comparisons ?? 0) >= 30, `${minutes?.candidate.comparisons} comparisons of eta_minutes`);
  t.equal(minutes?.verdict.differs, true, "eta_minutes differs beyond the noise");
  t.equal(minutes?.candidate.agreementRate, 0);
  t.equal(minutes?.candidate.differences?.mean, 15, "by 15 minutes on average");
  t.equal(minutes?.noise.agreementRate, 1, "two v1 answers agree on eta_minutes");
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
  t.equal(metricSum(metrics, "guard_shadow_field_difference_mean", { pool: "v3", field: "eta_minutes" }), 15);
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

t.test("a client cannot pass for the guard's side request", async (t) => {
  const stack = await stackFor(t, {
    guardConfig: {
      routes: [
        {
          name: "eta",
          match: { pathPrefix: ETA, methods: ["POST"] },
          contract: { message: "demo.v1.DeliveryEta", action: "enforce" },
          canary: {
            stable: "v1",
            candidates: [{ pool: "v3", weight: 0 }],
            shadow: { pool: "v3", sampleRate: 0 },
          },
        },
      ],
    },
    editEnvoyConfig: routingThePool(await documentedShadowRoute()),
    demoArgs: { heavy: ["--version", "v3", "--variant", "eta_later"] },
  });
  const answers = await mapConcurrently(Array.from({ length: 10 }), 2, () =>
    post(`${stack.url}${ETA}`, { order: "o" }, { "x-guard-shadow": "v3 0123456789abcdef0123456789abcdef" }),
  );
  t.ok(
    answers.every((answer) => answer.headers.get("x-model-version") === "v1"),
    "a forged x-guard-shadow is an ordinary request: the stable pool answers",
  );
  t.equal(await upstreamServed(stack.heavy.url), 0, "v3 was never asked");
  const seen = await upstreamRequests(stack.light.url);
  t.ok(seen.length >= 10);
  t.ok(
    seen.every((request) => request.headers["x-guard-shadow"] === undefined),
    "the forged header did not reach the model",
  );
});
