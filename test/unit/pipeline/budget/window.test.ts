import t from "tap";
import { BudgetWindows } from "../../../../src/pipeline/budget/window.js";

t.test("a sliding minute from two buckets: the previous one weighted by what is left of it", async (t) => {
  let now = 60_000 * 100;
  const windows = new BudgetWindows(() => now);
  windows.add("a", 1, 100);
  windows.add("a", 1, 50);
  t.same(windows.usage("a"), { requests: 2, tokens: 150, resetMs: 60_000 });
  now += 45_000;
  t.same(windows.usage("a"), { requests: 2, tokens: 150, resetMs: 15_000 }, "same minute");
  now += 30_000; // a quarter into the next minute: three quarters of the previous one still count
  t.same(windows.usage("a"), { requests: 1.5, tokens: 112.5, resetMs: 45_000 });
  windows.add("a", 1, 10);
  t.same(windows.usage("a"), { requests: 2.5, tokens: 122.5, resetMs: 45_000 });
  now += 60_000;
  t.same(windows.usage("a"), { requests: 0.75, tokens: 7.5, resetMs: 45_000 }, "the old bucket is gone");
  t.same(windows.usage("b"), { requests: 0, tokens: 0, resetMs: 45_000 }, "tenants are apart");
});

t.test("tenants idle for two minutes are forgotten", async (t) => {
  let now = 0;
  const windows = new BudgetWindows(() => now);
  for (let tenant = 0; tenant < 100; tenant++) windows.add(`t${tenant}`, 1, 1);
  t.equal(windows.size, 100);
  now = 120_000;
  windows.add("fresh", 1, 1);
  t.equal(windows.size, 1);
  t.same(windows.usage("t1"), { requests: 0, tokens: 0, resetMs: 60_000 });
});
