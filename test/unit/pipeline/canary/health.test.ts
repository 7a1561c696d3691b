import t from "tap";
import { routeCanarySchema } from "../../../../src/pipeline/canary/config.js";
import { countAnswer, EMPTY_WINDOW, judge, wilsonLowerBound } from "../../../../src/pipeline/canary/health.js";

const health = routeCanarySchema.parse({ stable: "v1", candidates: [{ pool: "v2", weight: 0.1 }] }).health;

t.test("Wilson lower bound against hand-computed values", async (t) => {
  // 1 in 3 at 95%: p = 1/3, z = 1.96 → (0.3333 + 0.6403 − 1.96·√(0.0741 + 0.1067)) / 2.2805 = 0.0615
  t.equal(Number(wilsonLowerBound(1, 3, 0.95).toFixed(4)), 0.0615);
  // 10 in 100 at 95%: 0.0552
  t.equal(Number(wilsonLowerBound(10, 100, 0.95).toFixed(4)), 0.0552);
  t.equal(wilsonLowerBound(0, 100, 0.95), 0, "no failure, no lower bound");
  t.equal(wilsonLowerBound(0, 0, 0.95), 0);
  t.ok(wilsonLowerBound(10, 100, 0.99) < wilsonLowerBound(10, 100, 0.9), "more confidence, lower bound");
});

t.test("unhealthy only with confidence and enough answers", async (t) => {
  let window = EMPTY_WINDOW;
  for (let i = 0; i < 29; i++) window = countAnswer(window, i < 10 ? "violated" : "ok");
  t.same(judge(window, health), { healthy: true }, "10 violations in 29 answers: under minRequests (30)");
  window = countAnswer(window, "ok");
  const verdict = judge(window, health);
  t.match(verdict, { healthy: false, reason: "violations", max: 0.01 });
  t.ok(!verdict.healthy && verdict.lowerBound > 0.01);

  let few = EMPTY_WINDOW;
  for (let i = 0; i < 40; i++) few = countAnswer(few, i < 4 ? "violated" : "ok");
  t.same(judge(few, health), { healthy: true }, "4 violations in 40 (10%): under minEvents (5)");
  t.match(judge(countAnswer(few, "violated"), health), { healthy: false, reason: "violations" }, "the 5th decides");

  let rare = EMPTY_WINDOW;
  for (let i = 0; i < 1_000; i++) rare = countAnswer(rare, i === 500 ? "violated" : "ok");
  t.same(judge(rare, health), { healthy: true }, "1 violation in 1000: within 1%");

  let failing = EMPTY_WINDOW;
  for (let i = 0; i < 40; i++) failing = countAnswer(failing, i % 4 === 0 ? "error" : "ok");
  t.match(judge(failing, health), { healthy: false, reason: "errors", max: 0.05 }, "25% 5xx");
});

t.test("config: weights at most 1 in all, every pool named once, paths in errors", async (t) => {
  const parse = (canary: unknown) => routeCanarySchema.safeParse(canary);
  t.ok(parse({ stable: "v1", candidates: [{ pool: "v2", weight: 0.5 }] }).success);
  const heavy = parse({
    stable: "v1",
    candidates: [
      { pool: "v2", weight: 0.6 },
      { pool: "v3", weight: 0.6 },
    ],
  });
  t.same(
    heavy.error?.issues.map((issue) => [issue.path.join("."), issue.message]),
    [["candidates", "weights add up to 1.2, more than 1"]],
  );
  const twice = parse({ stable: "v1", candidates: [{ pool: "v1", weight: 0.1 }] });
  t.same(
    twice.error?.issues.map((issue) => issue.path.join(".")),
    ["candidates.0.pool"],
  );
  t.notOk(parse({ stable: "v1", candidates: [{ pool: "v2", weight: 0.1 }], health: { confidence: 0.97 } }).success);
});
