import t from "tap";
import { CircuitBreaker } from "../../../../src/pipeline/admission/circuit.js";
import { admissionSchema } from "../../../../src/pipeline/admission/config.js";

const config = admissionSchema.parse({
  circuit: { windowMs: 10_000, buckets: 10, minRequests: 10, failureRatio: 0.5, openMs: 5_000, halfOpenProbes: 2 },
}).circuit;

function failMany(breaker: CircuitBreaker, count: number, now: number): void {
  for (let i = 0; i < count; i++) breaker.record("failure", false, now);
}

t.test("stays closed below the minimum request count, opens at the failure ratio", async (t) => {
  const breaker = new CircuitBreaker(config);
  failMany(breaker, 9, 1_000);
  t.equal(breaker.state(1_000), "closed", "9 failures < minRequests");
  breaker.record("failure", false, 1_000);
  t.equal(breaker.state(1_000), "open");
  const permit = breaker.tryAcquire(2_000);
  t.same(permit, { allowed: false, retryAfterMs: 4_000 });
});

t.test("a failure ratio under the threshold keeps it closed", async (t) => {
  const breaker = new CircuitBreaker(config);
  for (let i = 0; i < 20; i++) breaker.record(i % 3 === 0 ? "failure" : "success", false, 500);
  t.equal(breaker.state(500), "closed");
});

t.test("old failures leave the rolling window", async (t) => {
  const breaker = new CircuitBreaker(config);
  failMany(breaker, 9, 0);
  // 11 s later the 9 failures are out of the 10 s window: one more failure is 1 of 1, under minRequests.
  breaker.record("failure", false, 11_000);
  t.equal(breaker.state(11_000), "closed");
});

t.test("half-open after the cool-down: limited probes, all succeed → closed", async (t) => {
  const breaker = new CircuitBreaker(config);
  failMany(breaker, 10, 0);
  t.equal(breaker.state(4_999), "open");
  t.equal(breaker.state(5_000), "half_open");
  t.same(breaker.tryAcquire(5_000), { allowed: true, probe: true });
  t.same(breaker.tryAcquire(5_000), { allowed: true, probe: true });
  t.same(breaker.tryAcquire(5_000), { allowed: false, retryAfterMs: 0 }, "probe budget spent");
  breaker.record("success", false, 5_100);
  t.equal(breaker.state(5_100), "half_open", "a late non-probe outcome does not decide");
  breaker.record("success", true, 5_200);
  t.equal(breaker.state(5_200), "half_open");
  breaker.record("success", true, 5_300);
  t.equal(breaker.state(5_300), "closed");
  t.same(breaker.tryAcquire(5_300), { allowed: true, probe: false });
  failMany(breaker, 9, 5_400);
  t.equal(breaker.state(5_400), "closed", "the window restarted on close");
});

t.test("a failed probe re-opens for a full cool-down", async (t) => {
  const breaker = new CircuitBreaker(config);
  failMany(breaker, 10, 0);
  breaker.tryAcquire(6_000);
  breaker.record("failure", true, 6_500);
  t.equal(breaker.state(6_500), "open");
  t.same(breaker.tryAcquire(7_000), { allowed: false, retryAfterMs: 4_500 });
  t.equal(breaker.state(11_500), "half_open");
});

t.test("an abandoned probe frees its slot", async (t) => {
  const breaker = new CircuitBreaker({ ...config, halfOpenProbes: 1 });
  failMany(breaker, 10, 0);
  t.same(breaker.tryAcquire(5_000), { allowed: true, probe: true });
  t.equal(breaker.tryAcquire(5_000).allowed, false);
  breaker.abandonProbe(5_010);
  t.same(breaker.tryAcquire(5_020), { allowed: true, probe: true });
});

t.test("disabled: always allows, never opens", async (t) => {
  const breaker = new CircuitBreaker({ ...config, enabled: false });
  failMany(breaker, 100, 0);
  t.equal(breaker.state(0), "closed");
  t.same(breaker.tryAcquire(0), { allowed: true, probe: false });
});
