// The status page's first paint needs no script: GET / carries the current report, rendered by the
// guard, and GET /status/live the same part for the script's updates. Every value is escaped.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import t, { type Test } from "tap";
import { startAdminServer } from "../../../../src/server/admin.js";
import { adminAccess } from "../../../../src/server/admin-access.js";
import { statusPageRoutes } from "../../../../src/server/status/page.js";
import type { StatusReport } from "../../../../src/server/status/report.js";

const INJECTED = `<img src=x onerror="alert(1)">`;

const REPORT: StatusReport = {
  version: "9.9.9",
  uptimeSeconds: 125,
  rateWindowSeconds: 60,
  routes: [
    {
      route: "sentiment",
      requests: 6,
      ratePerSecond: 0.1,
      answeredByGuard: 2,
      shed: 1,
      sheds: [{ reason: "shed.overload", priority: "sheddable", count: 1 }],
      cache: { hits: 1, misses: 3, hitRatio: 0.25 },
      cost: {
        count: 2,
        sum: 40,
        buckets: [
          { le: "16", count: 1 },
          { le: "+Inf", count: 1 },
        ],
      },
    },
  ],
  pools: [{ pool: "sentiment", circuit: "half_open", inflightCost: 3, limitCost: 10, queued: 1 }],
  contracts: [
    {
      contract: "demo.v1.Sentiment",
      modelVersion: "v2",
      checked: 4,
      violated: 1,
      violationRatio: 0.25,
      topRules: [{ rule: "double.gte_lte", count: 1, example: { field: "score", message: INJECTED, ageSeconds: 90 } }],
    },
  ],
  drift: [
    {
      route: "sentiment",
      contract: "demo.v1.Sentiment",
      baseline: "v1",
      pinned: true,
      versions: [
        { modelVersion: "v1", samples: 50, verdict: "baseline", topFields: [], inputDrift: [] },
        {
          modelVersion: "v2",
          samples: 40,
          verdict: "model_drift",
          topFields: [{ field: "score", drifting: ["psi"], scores: { psi: 0.41 } }],
          inputDrift: [],
        },
      ],
    },
  ],
  rollouts: [
    {
      route: "sentiment",
      stable: "v1",
      candidates: [
        {
          pool: "v2",
          weight: 0.3,
          share: 0.01,
          window: { answers: 30, violations: 10, errors: 0 },
          ownWindow: { answers: 12, violations: 4, errors: 0 },
          quarantine: {
            source: "fleet",
            ageSeconds: 150,
            reason: "violations",
            rate: 0.3333,
            lowerBound: 0.1923,
            max: 0.01,
            evidence: { answers: 30, violations: 10, errors: 0 },
            healthyProbes: 2,
          },
        },
        {
          pool: "v3",
          weight: 0.1,
          share: 0.1,
          window: { answers: 7, violations: 0, errors: 1 },
          ownWindow: { answers: 7, violations: 0, errors: 1 },
          quarantine: null,
        },
      ],
      shadow: {
        pool: "v3",
        sampleRate: 0.05,
        inFlight: 1,
        maxConcurrent: 4,
        fields: [
          {
            field: "eta_minutes",
            candidate: {
              comparisons: 40,
              agreementRate: 0,
              differences: { count: 40, mean: 15, p50: 15, p90: 15, p99: 15, max: 15 },
            },
            noise: {
              comparisons: 40,
              agreementRate: 1,
              differences: { count: 40, mean: 0, p50: 0, p90: 0, p99: 0, max: 0 },
            },
            verdict: {
              differs: true,
              noiseThreshold: 0,
              candidateRate: 1,
              noiseRate: 0,
              candidateLower: 0.9124,
              noiseUpper: 0.0876,
            },
          },
          {
            field: "computed_at",
            candidate: { comparisons: 40, agreementRate: 0 },
            noise: { comparisons: 40, agreementRate: 0 },
            verdict: {
              differs: false,
              noiseThreshold: 0,
              candidateRate: 1,
              noiseRate: 1,
              candidateLower: 0.9124,
              noiseUpper: 1,
            },
          },
        ],
      },
    },
  ],
  reloads: { success: 2, failure: 1 },
  unguarded: { requests: 5, share: 0.05, byReason: { failure_mode_allowed: 5, message_timeout: 0 } },
};

async function serve(t: Test, report: StatusReport): Promise<(path: string) => Promise<Response>> {
  const address = "127.0.0.1:0";
  const server = await startAdminServer(address, {
    registry: () => new Registry(),
    ready: () => true,
    routes: await statusPageRoutes({ report: async () => report }),
    access: adminAccess({ address, allowedHosts: [], tokenFile: undefined, envToken: undefined }),
  });
  t.teardown(() => server.close());
  return (path) => fetch(new URL(path, server.url));
}

t.test("the page as first sent holds the report: no script needed to see it", async (t) => {
  const get = await serve(t, REPORT);
  const response = await get("/");
  t.equal(response.status, 200);
  t.match(response.headers.get("content-type"), /^text\/html/);
  t.match(response.headers.get("content-security-policy"), /default-src 'self'/);
  const page = await response.text();
  t.match(page, /<div id="meta" class="meta">v9\.9\.9 · up 2m · reloads 2 ok, 1 failed · rates over 60s<\/div>/);
  t.match(page, /data-state="rendered"/, "marked as rendered, not live, until the script updates it");
  t.notMatch(page, /connecting/);
  t.match(
    page,
    /<p id="unguarded" class="unguarded" role="alert">5 requests reached a model without the guard \(5% of the traffic\): failure mode allowed 5<\/p>/,
    "the bypass banner, causes with a count only",
  );
  t.match(page, /<div class="pool" data-pool="sentiment" data-circuit="half_open">/);
  t.match(page, /circuit half-open/);
  const route = /<tr data-route="sentiment">[\s\S]*?<\/tr>/.exec(page)?.[0] ?? "";
  t.match(route, /<td class="num requests">6<\/td>/);
  t.match(route, /data-reason="shed\.overload" data-priority="sheddable"><b>overload<\/b> · sheddable/);
  t.match(route, /class="ratio-value">25%</, "the cache hit ratio");
  t.match(route, /<svg class="histogram"[^>]*><title>2 requests, mean 20 units<\/title>/);
  const contract = /<tr data-contract="demo\.v1\.Sentiment" data-model-version="v2" class="broken">[\s\S]*?<\/tr>/.exec(
    page,
  )?.[0];
  t.ok(contract, "the violating version, marked broken");
  t.match(contract, /<li data-rule="double\.gte_lte"><code class="rule">double\.gte_lte<\/code><span class="count">×1/);
  t.match(contract, /<code class="field">score<\/code>/);
  t.match(contract, /· 2m ago/, "the example's age");
  t.notMatch(page, /No contract verdicts yet/);
  const drift = /<tr data-route="sentiment" data-model-version="v2" data-verdict="model_drift">[\s\S]*?<\/tr>/.exec(
    page,
  )?.[0];
  t.match(drift, /<li data-field="score"><code class="rule">score<\/code><span class="muted small"> psi 0\.41<\/span>/);
  t.match(page, /<div class="muted small">baseline v1 \(pinned\)<\/div>/);
  t.match(
    page,
    /<p id="quarantined" class="quarantine-banner" role="alert">Quarantined, out of traffic but for probes: v2 of sentiment \(violations\)\./,
    "the quarantine banner",
  );
  const quarantined = /<tr data-route="sentiment" data-pool="v2" data-state="quarantined">[\s\S]*?<\/tr>/.exec(
    page,
  )?.[0];
  t.match(quarantined, /sentiment<div class="muted small">stable v1<\/div>/);
  t.match(
    quarantined,
    /<td class="num">30%<\/td><td class="num">1%<\/td><td class="num">30<\/td><td class="num">10<\/td>/,
  );
  t.match(
    quarantined,
    /violations 33\.3%, lower bound 19\.2% &gt; max 1% · evidence 30 answers, 10 violations, 0 errors · 3m ago · decided by another sidecar · 2 healthy probes/,
  );
  t.match(page, /<tr data-route="sentiment" data-pool="v3" data-state="serving">[\s\S]*?serving<\/span><\/td><\/tr>/);
  const drifting = /<tr data-route="sentiment" data-field="eta_minutes" data-state="differs">[\s\S]*?<\/tr>/.exec(
    page,
  )?.[0];
  t.match(drifting, /v3 against v1 · sampling 5% · 1 of 4 in flight/, "the shadow comparison's section");
  t.match(drifting, /<td class="num">40<\/td><td class="num">0%<\/td><td class="num">100%<\/td><td>mean 15<div/);
  t.match(drifting, /differing 100% \(lower bound 91\.2%\) vs noise 0% \(upper bound 8\.8%\)/);
  t.match(
    page,
    /<tr data-route="sentiment" data-field="computed_at" data-state="within_noise">[\s\S]*?within noise/,
    "a field as noisy between two stable answers is not a difference",
  );
});

t.test("values from model responses are text, never markup", async (t) => {
  const page = await (await (await serve(t, REPORT))("/")).text();
  t.notOk(page.includes(INJECTED));
  t.ok(page.includes("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"));
});

t.test("the live part is the page's own, ready for the script to swap in", async (t) => {
  const get = await serve(t, REPORT);
  const page = await (await get("/")).text();
  const live = await (await get("/status/live")).text();
  t.ok(live.startsWith("<header>"));
  t.ok(page.includes(`<div id="live">${live}</div>`), "the same markup as the first paint");
  t.same(await (await get("/api/status")).json(), REPORT, "/api/status still serves the report as JSON");
});

t.test("an idle guard: no banner, the empty states", async (t) => {
  const get = await serve(t, {
    ...REPORT,
    routes: [],
    pools: [],
    contracts: [],
    drift: [],
    rollouts: [],
    unguarded: null,
  });
  const page = await (await get("/")).text();
  t.notMatch(page, /id="unguarded"/);
  t.notMatch(page, /id="quarantined"/);
  t.match(page, /No route is in rollout\./);
  t.match(page, /No route has admission control enabled\./);
  t.match(page, /No contract verdicts yet\./);
  t.match(page, /No contract-bound answers profiled yet\./);
});

t.test("a page without its slot for the status fails at startup", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "guard-status-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const file of ["status.js", "status.css"]) await writeFile(join(dir, file), "");
  await writeFile(join(dir, "index.html"), "<body></body>");
  await t.rejects(statusPageRoutes({ report: async () => REPORT }, dir), /needs exactly one <!--status-->/);
});
