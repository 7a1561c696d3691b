import { Counter, Gauge, Histogram, Registry } from "prom-client";
import t from "tap";
import { RecentViolations } from "../../../../src/pipeline/contracts/recent.js";
import type { FieldDrift, RouteDrift } from "../../../../src/pipeline/drift/compare.js";
import { type DriftSource, StatusReporter } from "../../../../src/server/status/report.js";

function fixture(drift?: DriftSource) {
  const registry = new Registry();
  const registers = [registry];
  const requests = new Counter({
    name: "guard_requests_total",
    help: "h",
    labelNames: ["route", "answered_by", "code_class"],
    registers,
  });
  const shed = new Counter({
    name: "guard_shed_total",
    help: "h",
    labelNames: ["reason", "priority", "route"],
    registers,
  });
  const hits = new Counter({ name: "guard_cache_hits_total", help: "h", labelNames: ["route", "tier"], registers });
  const misses = new Counter({ name: "guard_cache_misses_total", help: "h", labelNames: ["route"], registers });
  const cost = new Histogram({
    name: "guard_request_cost",
    help: "h",
    labelNames: ["route", "tier"],
    buckets: [16, 256, 4096],
    registers,
  });
  const checks = new Counter({
    name: "guard_contract_checks_total",
    help: "h",
    labelNames: ["contract", "model_version", "result"],
    registers,
  });
  const violations = new Counter({
    name: "guard_contract_violations_total",
    help: "h",
    labelNames: ["contract", "model_version", "rule", "field"],
    registers,
  });
  const circuit = new Gauge({ name: "guard_circuit_state", help: "h", labelNames: ["pool"], registers });
  const reloads = new Counter({ name: "guard_config_reloads_total", help: "h", labelNames: ["result"], registers });
  let now = 0;
  const recent = new RecentViolations();
  const reporter = new StatusReporter({
    registry: () => registry,
    recentViolations: () => recent,
    drift: () => drift,
    rollouts: () => [],
    routes: () => ["chat", "idle"],
    version: "9.9.9",
    now: () => now,
  });
  return {
    requests,
    shed,
    hits,
    misses,
    cost,
    checks,
    violations,
    circuit,
    reloads,
    recent,
    reporter,
    advance: (ms: number) => (now += ms),
  };
}

t.test("per-route traffic, sheds, cache and cost", async (t) => {
  const f = fixture();
  f.requests.inc({ route: "chat", answered_by: "upstream", code_class: "2xx" }, 90);
  f.requests.inc({ route: "chat", answered_by: "guard", code_class: "4xx" }, 10);
  f.shed.inc({ route: "chat", reason: "shed.overload", priority: "sheddable" }, 7);
  f.shed.inc({ route: "chat", reason: "shed.queue_timeout", priority: "standard" }, 3);
  f.hits.inc({ route: "chat", tier: "local" }, 30);
  f.hits.inc({ route: "chat", tier: "redis" }, 10);
  f.misses.inc({ route: "chat" }, 60);
  for (const value of [10, 100, 100, 5000])
    f.cost.observe({ route: "chat", tier: value > 4096 ? "heavy" : "light" }, value);
  f.circuit.set({ pool: "default" }, 2);
  f.reloads.inc({ result: "failure" });
  f.advance(10_000);
  const report = await f.reporter.report();
  t.equal(report.version, "9.9.9");
  t.equal(report.uptimeSeconds, 10);
  t.equal(report.rateWindowSeconds, 10);
  t.same(
    report.routes.map((route) => route.route),
    ["chat", "idle"],
    "configured routes are listed even without traffic",
  );
  const chat = report.routes[0];
  t.equal(chat?.requests, 100);
  t.equal(chat?.ratePerSecond, 10, "100 requests since the baseline 10 s ago");
  t.equal(chat?.answeredByGuard, 10);
  t.equal(chat?.shed, 10);
  t.same(chat?.sheds, [
    { reason: "shed.overload", priority: "sheddable", count: 7 },
    { reason: "shed.queue_timeout", priority: "standard", count: 3 },
  ]);
  t.same(chat?.cache, { hits: 40, misses: 60, hitRatio: 0.4 });
  t.same(chat?.cost, {
    count: 4,
    sum: 5210,
    buckets: [
      { le: "16", count: 1 },
      { le: "256", count: 2 },
      { le: "4096", count: 0 },
      { le: "+Inf", count: 1 },
    ],
  });
  t.same(report.routes[1], {
    route: "idle",
    requests: 0,
    ratePerSecond: 0,
    answeredByGuard: 0,
    shed: 0,
    sheds: [],
    cache: null,
    cost: null,
  });
  t.same(report.pools, [{ pool: "default", circuit: "open", inflightCost: 0, limitCost: 0, queued: 0 }]);
  t.same(report.reloads, { success: 0, failure: 1 });
});

t.test("rates come from the last minute of samples", async (t) => {
  const f = fixture();
  const chat = { route: "chat", answered_by: "upstream", code_class: "2xx" };
  f.requests.inc(chat, 1000);
  f.advance(100_000);
  await f.reporter.report();
  f.advance(30_000);
  f.requests.inc(chat, 60);
  await f.reporter.report();
  f.advance(40_000);
  f.requests.inc(chat, 80);
  const report = await f.reporter.report();
  // Window: from the sample 70 s ago (the newest at or before a minute ago) to now.
  t.equal(report.rateWindowSeconds, 70);
  t.equal(report.routes[0]?.ratePerSecond, 2);
});

t.test("which version broke what: ratio, top rules with their latest example", async (t) => {
  const f = fixture();
  const sentiment = (version: string, result: string, count: number): void =>
    f.checks.inc({ contract: "demo.v1.Sentiment", model_version: version, result }, count);
  sentiment("v1", "passed", 100);
  sentiment("v2", "passed", 6);
  sentiment("v2", "violated", 4);
  sentiment("v2", "not_sampled", 1000);
  for (const [rule, field, count] of [
    ["double.gte_lte", "score", 4],
    ["string.in", "label", 2],
    ["json.unknown_field", "extra", 1],
    ["json.wrong_type", "x", 1],
  ] as const) {
    f.violations.inc({ contract: "demo.v1.Sentiment", model_version: "v2", rule, field }, count);
  }
  f.recent.record(
    "demo.v1.Sentiment",
    "v2",
    [{ field: "score", rule: "double.gte_lte", message: "must be within [0, 1]" }],
    0,
  );
  f.advance(12_000);
  const report = await f.reporter.report();
  t.same(
    report.contracts.map((row) => [row.modelVersion, row.checked, row.violated, row.violationRatio]),
    [
      ["v2", 10, 4, 0.4],
      ["v1", 100, 0, 0],
    ],
    "worst version first; unsampled responses do not count as checked",
  );
  t.same(report.contracts[0]?.topRules, [
    { rule: "double.gte_lte", count: 4, example: { field: "score", message: "must be within [0, 1]", ageSeconds: 12 } },
    { rule: "string.in", count: 2, example: null },
    { rule: "json.unknown_field", count: 1, example: null },
  ]);
});

t.test("drift per route: the baseline, each version's verdict, top drifting fields and input drift", async (t) => {
  const field = (name: string, severity: number, drifting: FieldDrift["drifting"]): FieldDrift => ({
    field: name,
    kind: "numeric",
    scores: { psi: severity * 0.2, missing_delta: 0 },
    drifting,
    severity,
  });
  const routes: RouteDrift[] = [
    {
      route: "sentiment",
      contract: "demo.v1.Sentiment",
      baseline: "v1",
      pinned: false,
      droppedAnswers: 0,
      versions: [
        { version: "v1", samples: 900, verdict: "baseline", fields: [], input: [] },
        {
          version: "v2",
          samples: 300,
          verdict: "model_drift",
          fields: [field("score", 9, ["psi", "variance_ratio"]), field("label", 2, ["psi"]), field("x", 0.5, [])],
          input: [field("input.prompt_tokens", 0.3, [])],
        },
        {
          version: "v3",
          samples: 250,
          verdict: "input_drift",
          fields: [field("label", 1.5, ["psi"])],
          input: [field("input.prompt_tokens", 4, ["psi"]), field("input.tier", 0.1, [])],
        },
        { version: "v4", samples: 12, verdict: "insufficient_data", fields: [], input: [] },
      ],
    },
  ];
  const report = await fixture({ report: () => routes, topFields: 1 }).reporter.report();
  const [sentiment] = report.drift;
  t.match(sentiment, { route: "sentiment", contract: "demo.v1.Sentiment", baseline: "v1", pinned: false });
  t.same(
    sentiment?.versions.map((version) => [version.modelVersion, version.verdict, version.samples]),
    [
      ["v1", "baseline", 900],
      ["v2", "model_drift", 300],
      ["v3", "input_drift", 250],
      ["v4", "insufficient_data", 12],
    ],
  );
  t.same(
    sentiment?.versions[1]?.topFields,
    [{ field: "score", drifting: ["psi", "variance_ratio"], scores: { psi: 1.8, missing_delta: 0 } }],
    "drifting fields only, at most drift.topFields",
  );
  t.same(sentiment?.versions[1]?.inputDrift, [], "inputs that did not drift are left out");
  t.same(
    sentiment?.versions[2]?.inputDrift.map((input) => input.field),
    ["input.prompt_tokens"],
  );
  t.same((await fixture().reporter.report()).drift, [], "no drift monitor: no drift rows");
});

t.test("what Envoy sent past the guard, and its share of the traffic", async (t) => {
  const { reporter } = fixture();
  t.equal((await reporter.report()).unguarded, null, "without envoy.adminUrl: nothing to say");
  const registry = new Registry();
  const streams = new Counter({
    name: "guard_extproc_streams_total",
    help: "h",
    labelNames: ["outcome"],
    registers: [registry],
  });
  const unguarded = new Counter({
    name: "guard_envoy_unguarded_total",
    help: "h",
    labelNames: ["reason"],
    registers: [registry],
  });
  const withEnvoy = new StatusReporter({
    registry: () => registry,
    recentViolations: () => undefined,
    drift: () => undefined,
    rollouts: () => [],
    routes: () => [],
    version: "9.9.9",
    now: () => 0,
  });
  streams.inc({ outcome: "completed" }, 96);
  unguarded.inc({ reason: "stream_error" }, 3);
  unguarded.inc({ reason: "overflow" }, 1);
  unguarded.inc({ reason: "message_timeout" }, 0);
  t.same((await withEnvoy.report()).unguarded, {
    requests: 4,
    share: 0.04,
    byReason: { stream_error: 3, overflow: 1, message_timeout: 0 },
  });
});
