import t from "tap";
import { checkTally, formatSummary, verdictOf } from "../../../src/commands/check-summary.js";
import type { CheckResult } from "../../../src/contracts/contract.js";

function result(body: unknown, rules: string[], total = rules.length): CheckResult {
  const violations = rules.map((rule, index) => ({ field: `items[${index}].x`, rule, message: "m" }));
  return { valid: total === 0, body, payloads: [], violations, total };
}

t.test("verdicts: passed, not JSON, no payload located, and a payload that broke the contract", async (t) => {
  t.same(verdictOf(result({}, [])), { verdict: "passed" });
  t.same(verdictOf(result(undefined, ["json.syntax"])), { verdict: "unverifiable", reason: "body.not_json" });
  t.same(verdictOf(result({}, ["payload.missing", "payload.empty"])), {
    verdict: "unverifiable",
    reason: "payload.missing",
  });
  t.same(verdictOf(result(null, ["payload.not_array"])), { verdict: "unverifiable", reason: "payload.not_array" });
  t.same(verdictOf(result({}, ["payload.missing", "double.gte_lte"])), { verdict: "violated" }, "one payload checked");
  t.same(verdictOf(result({}, ["json.syntax"])), { verdict: "violated" }, "embedded content that is not JSON");
  t.same(
    verdictOf(result({}, ["payload.missing"], 3)),
    { verdict: "violated" },
    "violations past the listing cap may be real ones",
  );
});

t.test("the tally counts lines once per rule and per normalised field", async (t) => {
  const tally = checkTally({ maxViolationRatio: 0.5, maxUnverifiableRatio: 0 });
  const twice = result({}, ["string.in", "string.in"]);
  tally.add(twice, verdictOf(twice));
  const passed = result({}, []);
  tally.add(passed, verdictOf(passed));
  tally.blank();
  const summary = tally.summary();
  t.same(summary.violated_by_rule, { "string.in": 1 });
  t.same(summary.violated_by_field, { "items[*].x": 1 });
  t.match(summary, { lines_read: 3, blank: 1, checked: 2, violation_ratio: 0.5, ok: true });
});

t.test("nothing but blank lines: ratios 0, within any tolerance", async (t) => {
  const tally = checkTally({ maxViolationRatio: 0, maxUnverifiableRatio: 0 });
  tally.blank();
  const summary = tally.summary();
  t.match(summary, { lines_read: 1, blank: 1, checked: 0, violation_ratio: 0, unverifiable_ratio: 0, ok: true });
  t.same(formatSummary(summary), [
    "check: 1 lines read: 0 checked (0 passed, 0 violated), 0 unverifiable, 1 blank",
    "check: ok: violation-ratio 0 within --max-violation-ratio 0, unverifiable-ratio 0 within --max-unverifiable-ratio 0",
  ]);
});
