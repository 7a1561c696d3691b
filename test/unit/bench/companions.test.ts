import t from "tap";
import {
  baselineOf,
  budgetHeaderProblem,
  type CompanionReport,
  type CompanionRun,
  companionScenarios,
  companionTargets,
  companionTraffic,
  runsIn,
  STORM_PATH,
  stormRoute,
  withChatBudget,
} from "../../../bench/shed/companions.js";
import { parseScenario, scenarioName } from "../../../bench/shed/retry-report.js";
import type { BudgetHeaders, Sample } from "../../../bench/shed/traffic.js";
import type { BenchRequest } from "../../../bench/shed/workload.js";

const REQUEST: BenchRequest = { priority: "critical", body: "{}", workMs: 100, sloMs: 500 };

function budgetAnswer(budgetHeaders: BudgetHeaders): Sample {
  return {
    priority: "standard",
    status: 429,
    ms: 1,
    workMs: 100,
    good: false,
    shed: true,
    lagMs: 0,
    outcome: "429 budget.tokens",
    fromModel: false,
    retryAfterMs: Number(budgetHeaders.retryAfterMs),
    budgetHeaders,
  };
}

t.test("companion scenarios parse from the command line and run where they mean something", async (t) => {
  t.same(parseScenario("backoff@1+storm"), { policy: "backoff", load: 1, companion: "storm" });
  t.same(parseScenario("immediate@4+hog+spoof"), { policy: "immediate", load: 4, cpuHog: true, companion: "spoof" });
  t.equal(scenarioName({ policy: "backoff", load: 0.3, companion: "tenant10x" }), "backoff@0.3x+tenant10x");
  t.throws(() => parseScenario("backoff@1+flood"), /\+<storm\|spoof\|tenants\|tenant10x>/);
  t.ok(runsIn({ policy: "backoff", load: 1, companion: "storm" }, "none"), "a storm needs no classes");
  t.notOk(runsIn({ policy: "backoff", load: 1, companion: "tenant10x" }, "adaptive_concurrency"), "no budgets there");
  t.ok(runsIn({ policy: "backoff", load: 1 }, "none"));
  t.equal(baselineOf("backoff@2x+spoof"), "backoff@2x");
  t.equal(baselineOf("backoff@0.3x+tenant10x"), "backoff@0.3x+tenants");
  t.equal(baselineOf("backoff@1x+storm"), undefined);
  t.same(companionScenarios(["immediate@4x", "backoff@2x", "backoff@2x+spoof", "backoff@1x+storm"]), [
    "backoff@2x",
    "backoff@2x+spoof",
    "backoff@1x+storm",
  ]);
});

t.test("the storm route goes to the second pool, before the catch-all", async (t) => {
  const before = [
    "      routes:",
    "        - match: { prefix: /, headers: [heavy] }",
    "          route: { cluster: model_heavy }",
  ];
  const fallback = ['        - match: { prefix: "/" }', "          route: { cluster: model_light }", ""];
  const storm = [`        - match: { prefix: "${STORM_PATH}" }`, "          route: { cluster: model_heavy }"];
  t.equal(stormRoute([...before, ...fallback].join("\n")), [...before, ...storm, ...fallback].join("\n"));
  t.throws(() => stormRoute("routes: []\n"), /no catch-all route/);
});

t.test("the chat route's tenant budget is set and taken away", async (t) => {
  const config = { log: { level: "warn" }, routes: [{ name: "chat", cache: {} }, { name: "sentiment" }] };
  const budgeted = withChatBudget(config, 600);
  t.same(budgeted.routes, [
    { name: "chat", cache: {}, budget: { enabled: true, tokensPerMinute: 600 } },
    { name: "sentiment" },
  ]);
  t.same(withChatBudget(budgeted, undefined), config);
});

t.test("companion clients are sized from the scenario", async (t) => {
  const asked: number[] = [];
  const input = {
    users: 20,
    capacityPerSecond: 10,
    tokensPerRequest: 300,
    criticalShare: 0.2,
    usersFor: (load: number) => {
      asked.push(load);
      return 42;
    },
    next: () => REQUEST,
    sideNext: () => REQUEST,
  };
  const tenants = companionTraffic({ policy: "backoff", load: 0.3, companion: "tenant10x" }, input);
  // Each light tenant offers 0.15 × 10 req/s × 300 tokens a minute, half its budget.
  t.equal(tenants.tokensPerMinute, 2 * 0.15 * 10 * 300 * 60);
  t.same(
    tenants.main.map((group) => [group.users, group.headers]),
    [
      [10, { authorization: "Bearer tenant-a" }],
      [10, { authorization: "Bearer tenant-b" }],
    ],
  );
  t.match(tenants.side, { users: 42, policy: "none", headers: { authorization: "Bearer tenant-heavy" } });
  t.same(asked, [3], "the heavy tenant offers 10× a budget worth 0.3× capacity");
  t.equal(companionTraffic({ policy: "backoff", load: 0.3, companion: "tenants" }, input).side, undefined);

  const spoof = companionTraffic({ policy: "backoff", load: 2, companion: "spoof" }, input);
  t.match(spoof.side, { users: 4, headers: { "x-guard-priority": "critical" } });
  t.equal(spoof.side?.next(0).priority, "standard", "sent from standard's address");
  const storm = companionTraffic({ policy: "backoff", load: 1, companion: "storm" }, input);
  t.match(storm.side, { path: STORM_PATH, users: 20, headers: { "x-demo-status": "500" } });
  t.equal(companionTraffic({ policy: "backoff", load: 1 }, input).side, undefined);
});

t.test("a budget answer's waits agree or say why not", async (t) => {
  const check = (retryAfter: string, retryAfterMs: string, resetTokens: string) =>
    budgetHeaderProblem(budgetAnswer({ retryAfter, retryAfterMs, resetTokens }));
  t.equal(check("2", "1500", "2s"), null);
  t.equal(check("1", "1000", "20ms"), null, "at least a second");
  t.equal(check("65", "64200", "1m5s"), null);
  t.match(check("1", "1500", "2s"), /retry-after 1 is not retry-after-ms 1500/);
  t.match(check("2", "1500", "5s"), /outside x-ratelimit-reset-tokens 5s/);
  t.match(check("2", "1500", "soon"), /x-ratelimit-reset-tokens soon/);
});

const side = (over: Partial<CompanionReport>): CompanionReport => ({
  companion: "storm",
  users: 5,
  policy: "backoff",
  logical: 10,
  succeeded: 0,
  attempts: 20,
  circuitOpenAnswers: 15,
  tokensPerMinute: null,
  offeredBudgetMultiple: null,
  budgetAnswers: 0,
  budgetHeaderProblems: 0,
  budgetHeaderExamples: [],
  attemptOutcomes: {},
  ...over,
});

const companionRun = (scenario: string, over: Partial<CompanionRun> = {}): CompanionRun => ({
  variant: "guard",
  scenario,
  successRate: 1,
  successP99Ms: 1_000,
  protection503: 0,
  critical: { successRate: 1, successP99Ms: 400 },
  ...over,
});

t.test("the companion targets compare each scenario's worst run", async (t) => {
  const lines = companionTargets([
    companionRun("backoff@1x+storm", { companion: side({}) }),
    companionRun("backoff@1x+storm", { successRate: 0.99, protection503: 2, companion: side({}) }),
    companionRun("backoff@1x+storm", { variant: "none", successRate: 0.5 }),
    companionRun("backoff@2x"),
    companionRun("backoff@2x+spoof", {
      critical: { successRate: 1, successP99Ms: 600 },
      companion: side({ companion: "spoof" }),
    }),
    companionRun("backoff@0.3x+tenants"),
    companionRun("backoff@0.3x+tenant10x", {
      companion: side({
        companion: "tenant10x",
        budgetAnswers: 30,
        budgetHeaderProblems: 1,
        budgetHeaderExamples: ["retry-after-ms 10 outside x-ratelimit-reset-tokens 5s (at least 1 s)"],
        offeredBudgetMultiple: 9.5,
      }),
    }),
  ]);
  t.same(
    lines.map((line) => line.slice(0, 6).trim()),
    ["MISSED", "MISSED", "", "met", "MISSED", "met", "met", "met", "MISSED"],
  );
  t.match(lines[0], /healthy pool success ≥ 99\.9%: 99\.00%/);
  t.match(lines[2], /circuit-open answers per run: 15\/20, 15\/20/);
  t.match(lines[4], /real critical p99 unchanged \(≤ 1\.25× 400 ms\): 600 ms/);
  t.match(lines[7], /30\/20 \(offered 9\.5× budget\)/);
  t.match(lines[8], /29\/30 \(retry-after-ms 10 outside/);
});
