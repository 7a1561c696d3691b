import t from "tap";
import type { CacheHit } from "../../../../src/pipeline/cache/local-tier.js";
import { type Role, SingleFlight } from "../../../../src/pipeline/cache/single-flight.js";
import { VirtualTime } from "../../../helpers/virtual-time.js";

const hit: CacheHit = { response: { status: 200, headers: {}, body: new Uint8Array([1]) }, ageMs: 0 };

function leader(role: Role) {
  if (role.role !== "leader") throw new Error("expected to lead");
  return role.leadership;
}
function follower(role: Role) {
  if (role.role !== "follower") throw new Error("expected to follow");
  return role;
}

t.test("followers get the leader's entry; the flight is gone afterwards", async (t) => {
  const time = new VirtualTime();
  const flights = new SingleFlight(time.timers);
  const lead = leader(flights.join("k"));
  const waits = [follower(flights.join("k")).wait(1_000), follower(flights.join("k")).wait(1_000)];
  lead.settle(hit);
  for (const wait of waits) t.same(await wait.result, { kind: "served", hit });
  t.equal(flights.size, 0);
  t.equal(time.pendingTimers, 0, "wait timers cleared");
  t.equal(flights.join("k").role, "leader", "the next miss leads a new flight");
});

t.test("leader failure releases followers at once", async (t) => {
  const time = new VirtualTime();
  const flights = new SingleFlight(time.timers);
  const lead = leader(flights.join("k"));
  const wait = follower(flights.join("k")).wait(1_000);
  lead.settle(undefined);
  t.same(await wait.result, { kind: "leader_failed" });
  t.equal(flights.size, 0);
  t.equal(time.pendingTimers, 0);
});

t.test("a wait times out; the leader's later result does not reach it", async (t) => {
  const time = new VirtualTime();
  const flights = new SingleFlight(time.timers);
  const lead = leader(flights.join("k"));
  const wait = follower(flights.join("k")).wait(500);
  time.advance(499);
  const late = follower(flights.join("k")).wait(500);
  time.advance(1);
  t.same(await wait.result, { kind: "timeout" });
  t.equal(flights.size, 1, "the leader is still in flight");
  lead.settle(hit);
  t.same(await late.result, { kind: "served", hit });
  t.equal(flights.size, 0);
});

t.test("settle is once only, and an abandoned follower is dropped", async (t) => {
  const time = new VirtualTime();
  const flights = new SingleFlight(time.timers);
  const lead = leader(flights.join("k"));
  const gone = follower(flights.join("k")).wait(1_000);
  gone.abandon();
  t.same(await gone.result, { kind: "abandoned" });
  t.equal(time.pendingTimers, 0);
  const staying = follower(flights.join("k")).wait(1_000);
  lead.settle(undefined);
  lead.settle(hit);
  t.same(await staying.result, { kind: "leader_failed" });
  // A new flight for the same key is not disturbed by the old leader settling again.
  const next = leader(flights.join("k"));
  lead.settle(hit);
  t.equal(flights.size, 1);
  next.settle(undefined);
  t.equal(flights.size, 0);
});

t.test("keys are independent", async (t) => {
  const time = new VirtualTime();
  const flights = new SingleFlight(time.timers);
  const a = leader(flights.join("a"));
  t.equal(flights.join("b").role, "leader");
  const waitA = follower(flights.join("a")).wait(100);
  a.settle(hit);
  t.equal((await waitA.result).kind, "served");
  t.equal(flights.size, 1, "b still in flight");
});
