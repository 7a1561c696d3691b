import t from "tap";
import { admissionSchema } from "../../../../src/pipeline/admission/config.js";
import { RetryBudget } from "../../../../src/pipeline/admission/retry-budget.js";

const config = (retries: Record<string, unknown>) => admissionSchema.parse({ retries }).retries;

t.test("starts full, spends one per retry, and earns a share per first attempt", async (t) => {
  const budget = new RetryBudget(config({ ratio: 0.25, minPerSecond: 0, burst: 2 }));
  t.ok(budget.tryWithdraw(0));
  t.ok(budget.tryWithdraw(0));
  t.notOk(budget.tryWithdraw(0), "burst spent");
  for (let i = 0; i < 3; i++) budget.deposit(0);
  t.notOk(budget.tryWithdraw(0), "three first attempts earn three quarters of a retry");
  budget.deposit(0);
  t.ok(budget.tryWithdraw(0), "the fourth completes one");
  for (let i = 0; i < 100; i++) budget.deposit(0);
  t.ok(budget.tryWithdraw(0));
  t.ok(budget.tryWithdraw(0));
  t.notOk(budget.tryWithdraw(0), "savings are capped at burst");
});

t.test("time earns minPerSecond", async (t) => {
  const budget = new RetryBudget(config({ ratio: 0, minPerSecond: 2, burst: 1 }));
  t.ok(budget.tryWithdraw(1_000));
  t.notOk(budget.tryWithdraw(1_200), "0.4 earned in 200 ms");
  t.ok(budget.tryWithdraw(1_600), "one earned in 500 ms");
  t.ok(budget.tryWithdraw(60_000));
  t.notOk(budget.tryWithdraw(60_000), "a long quiet spell saves no more than burst");
});
