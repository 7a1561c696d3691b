import t from "tap";
import { admissionSchema } from "../../../../src/pipeline/admission/config.js";
import {
  AdmissionController,
  type Attempt,
  type Decision,
  type Ticket,
} from "../../../../src/pipeline/admission/controller.js";
import type { Priority } from "../../../../src/pipeline/admission/priority.js";
import { VirtualClock } from "../../../../src/pipeline/admission/virtual-clock.js";

// requestWeight 0: budget arithmetic in plain cost units (the per-request charge has its own test).
function setup(overrides: Record<string, unknown> = {}) {
  const config = admissionSchema.parse({
    requestWeight: 0,
    limit: { initial: 10, min: 1, max: 10 },
    circuit: { minRequests: 4, failureRatio: 0.5, openMs: 3_000, halfOpenProbes: 1 },
    ...overrides,
  });
  const clock = new VirtualClock();
  const controller = new AdmissionController(config, { now: clock.now, schedule: clock.schedule, random: () => 0 });
  const settled: { id: string; decision: Decision }[] = [];
  const acquire = (id: string, priority: Priority, cost = 1, tenant = ""): Attempt =>
    controller.acquire({ cost, priority, tenant }, (decision) => settled.push({ id, decision }));
  return { controller, clock, settled, acquire };
}

/** The wait a request of each class, cost 1, is given in a full pool (or what became of it). */
function classWaits(acquire: (id: string, priority: Priority, cost?: number) => Attempt): (number | string)[] {
  return (["sheddable", "standard", "critical"] as const).map((priority) => {
    const attempt = acquire(priority, priority, 1);
    return attempt.kind === "queued" ? attempt.maxWaitMs : attempt.kind;
  });
}

function ticketOf(attempt: Attempt): Ticket {
  if (attempt.kind !== "admitted") throw new Error(`expected admitted, got ${attempt.kind}`);
  return attempt.ticket;
}

t.test("junk cannot price everyone out: one request moves the typical cost by at most 10× its share", async (t) => {
  const { acquire, controller } = setup({ requestWeight: 1, limit: { initial: 1e9, min: 1, max: 1e9 } });
  const charges = (cost: number) => {
    const ticket = ticketOf(acquire("r", "critical", cost));
    controller.release(ticket, {});
    return ticket.charge - cost;
  };
  t.equal(charges(1_000), 1_000, "typical cost 1000");
  for (let i = 0; i < 5; i++) charges(2_000_000);
  const after = charges(1_000);
  t.ok(after < 2_500, `five 2M-unit junk requests raised the per-request charge to ${after.toFixed(0)}, not ~200k`);
  for (let i = 0; i < 200; i++) charges(3_000);
  t.ok(charges(3_000) > 2_900, "a real shift to larger requests is still followed");
});

t.test("class shares: sheddable fills 60%, standard 80%, critical 100% of the budget", async (t) => {
  const { acquire, controller } = setup();
  t.equal(acquire("s", "sheddable", 6).kind, "admitted");
  t.equal(acquire("s2", "sheddable", 1).kind, "queued", "sheddable beyond 6 of 10 waits");
  t.equal(acquire("st", "standard", 2).kind, "admitted", "standard up to 8");
  t.equal(acquire("c", "critical", 2).kind, "admitted", "critical up to 10");
  t.equal(controller.inFlightCost, 10);
});

t.test("every request holds its cost plus requestWeight × the typical cost", async (t) => {
  const { acquire, controller } = setup({ requestWeight: 1, limit: { initial: 100, min: 1, max: 100 } });
  const first = ticketOf(acquire("a", "critical", 4));
  t.equal(first.cost, 4, "the ticket keeps the request's own cost");
  t.equal(first.charge, 8, "the first request is the typical one: 4 + 1 × 4");
  const second = ticketOf(acquire("b", "critical", 4));
  t.equal(second.charge, 8);
  t.equal(controller.inFlightCost, 16);
  // Where requests of cost 4 are typical, small ones still hold about a typical request's worth:
  // a budget of 30 takes four requests of cost 1 after one of cost 4, a pure cost budget all ten.
  const admittedSmall = (requestWeight: number): number => {
    const pool = setup({ requestWeight, limit: { initial: 30, min: 1, max: 30 } });
    pool.acquire("typical", "critical", 4);
    return Array.from({ length: 10 }, (_, i) => pool.acquire(`s${i}`, "critical", 1)).filter(
      (attempt) => attempt.kind === "admitted",
    ).length;
  };
  t.equal(admittedSmall(1), 4);
  t.equal(admittedSmall(0), 10);
  controller.release(first, { verdict: "success" });
  t.equal(controller.inFlightCost, 8, "release returns the charge");
});

t.test("freed budget goes to the highest class first, whatever the arrival order", async (t) => {
  const { acquire, controller, settled } = setup();
  const blocker = ticketOf(acquire("blocker", "critical", 10));
  t.equal(acquire("shed-1", "sheddable").kind, "queued");
  t.equal(acquire("std-1", "standard").kind, "queued");
  t.equal(acquire("crit-1", "critical").kind, "queued");
  t.equal(controller.queueLength("critical"), 1);
  controller.release(blocker, { verdict: "success" });
  t.same(
    settled.map((entry) => entry.id),
    ["crit-1", "std-1", "shed-1"],
  );
  t.ok(settled.every((entry) => entry.decision.kind === "admitted"));
  t.equal(controller.inFlightCost, 3);
});

t.test("a newcomer does not overtake a queued request of equal or higher class", async (t) => {
  const { acquire } = setup();
  acquire("big", "standard", 8);
  t.equal(acquire("queued-std", "standard", 5).kind, "queued");
  t.equal(acquire("small-std", "standard", 1).kind, "queued", "fits, but a standard request waits ahead");
  t.equal(acquire("crit", "critical", 1).kind, "admitted", "a higher class may pass");
});

// Teaches the guard's own latency model: one request that ran alone took msPerCost per cost unit.
function learnUnloaded(pool: ReturnType<typeof setup>, msPerCost: number): void {
  const ticket = ticketOf(pool.acquire("quiet", "critical", 1));
  pool.clock.advanceTo(pool.clock.nowMs + msPerCost);
  pool.controller.release(ticket, { verdict: "success", latencyMs: msPerCost });
}

// The queue-order tests below want the critical class's whole 900 ms whatever the latency learned.
const FIXED_CRITICAL_WAIT = { classes: { critical: { maxWaitLatencies: 1_000 } } };

t.test("within a class, a smaller request that arrived soon after a large one is served first", async (t) => {
  const pool = setup(FIXED_CRITICAL_WAIT);
  learnUnloaded(pool, 10);
  const blocker = ticketOf(pool.acquire("blocker", "critical", 10));
  t.equal(pool.acquire("large", "critical", 8).kind, "queued", "due 80 ms after arrival (8 × 10 ms)");
  pool.clock.advanceTo(pool.clock.nowMs + 20);
  t.equal(pool.acquire("small", "critical", 1).kind, "queued", "due 10 ms after arrival: 50 ms before the large one");
  pool.controller.release(blocker, { verdict: "success" });
  t.same(
    pool.settled.map((entry) => entry.id),
    ["small", "large"],
  );
});

t.test(
  "the head start is bounded: only arrivals within half the class's max wait overtake a large request",
  async (t) => {
    // 100 ms per cost unit: the large request alone takes 800 ms, but its due time is capped at 450 ms
    // after arrival (critical waits up to 900 ms); a small one is due 100 ms after its arrival.
    const pool = setup(FIXED_CRITICAL_WAIT);
    learnUnloaded(pool, 100);
    const blocker = ticketOf(pool.acquire("blocker", "critical", 10));
    t.equal(pool.acquire("large", "critical", 8).kind, "queued");
    pool.clock.advanceTo(pool.clock.nowMs + 300);
    t.equal(pool.acquire("small-at-300", "critical", 1).kind, "queued");
    pool.clock.advanceTo(pool.clock.nowMs + 100);
    t.equal(pool.acquire("small-at-400", "critical", 1).kind, "queued");
    pool.controller.release(blocker, { verdict: "success" });
    t.same(
      pool.settled.map((entry) => entry.id),
      ["small-at-300", "large", "small-at-400"],
    );
    t.ok(pool.settled.every((entry) => entry.decision.kind === "admitted"));
  },
);

t.test("queue timeout: 429 shed.queue_timeout after the class's max wait", async (t) => {
  const { acquire, clock, settled, controller } = setup({ classes: { sheddable: { maxWaitMs: 50 } } });
  acquire("blocker", "critical", 10);
  const attempt = acquire("late", "sheddable");
  t.equal(attempt.kind, "queued");
  t.equal(attempt.kind === "queued" ? attempt.maxWaitMs : -1, 50);
  clock.advanceTo(49);
  t.equal(settled.length, 0);
  clock.advanceTo(50);
  t.equal(settled.length, 1);
  const decision = settled[0]?.decision;
  t.equal(decision?.kind, "shed");
  if (decision?.kind !== "shed") return;
  t.equal(decision.reason, "shed.queue_timeout");
  t.equal(decision.waitedMs, 50);
  t.equal(decision.retryAfterMs, 1_000, "before any upstream latency is known: a second");
  t.equal(controller.queueLength("sheddable"), 0);
});

t.test("a class waits a multiple of the upstream's recent latency, within its maxWaitMs", async (t) => {
  const { acquire, clock, controller } = setup({ classes: { standard: { maxWaitMs: 80 } } });
  const first = ticketOf(acquire("first", "critical", 1));
  clock.advanceTo(200);
  controller.release(first, { verdict: "success", latencyMs: 200 });
  acquire("fill", "critical", 10);
  const waits = classWaits(acquire);
  t.same(waits, [200, 80, 800], "1, 0.5 (capped by maxWaitMs 80) and 4 round trips of 200 ms");
});

t.test(
  "while arrivals keep pace with completions, a queued request may wait its class's whole maxWaitMs",
  async (t) => {
    const { acquire, clock, controller } = setup();
    // Forty requests, each answered in 200 ms: as much completes as arrives.
    for (let i = 0; i < 40; i++) {
      const ticket = ticketOf(acquire(`r${i}`, "critical", 1));
      clock.advanceTo(clock.nowMs + 10);
      controller.release(ticket, { verdict: "success", latencyMs: 200 });
    }
    acquire("fill", "critical", 10);
    const waits = classWaits(acquire);
    t.same(waits, [900, 600, 900], "a burst at capacity: each class's maxWaitMs, not 1, 0.5 and 4 round trips");
    // Arrivals now outpace completions (nothing completes): overload, and the waits are round trips again.
    for (let i = 0; i < 40; i++) acquire(`flood${i}`, "sheddable", 1);
    const critical = acquire("late", "critical", 1);
    t.equal(critical.kind === "queued" ? critical.maxWaitMs : critical.kind, 800, "4 round trips of 200 ms");
  },
);

t.test("Retry-After: the queue's drain time plus one upstream round trip", async (t) => {
  const { acquire, clock, controller } = setup({
    limit: { initial: 1, min: 1, max: 1 },
    classes: { standard: { maxWaitMs: 0 } },
  });
  const first = ticketOf(acquire("first", "critical", 1));
  clock.advanceTo(200);
  controller.release(first, { verdict: "success", latencyMs: 200 });
  acquire("fill", "critical", 1);
  const shedNow = acquire("standard", "standard", 1);
  t.equal(shedNow.kind === "shed" ? shedNow.retryAfterMs : -1, 200, "nothing queued: one round trip");
  t.equal(acquire("queued", "critical", 1).kind, "queued");
  const shedBehindQueue = acquire("standard-2", "standard", 1);
  t.equal(shedBehindQueue.kind === "shed" ? shedBehindQueue.retryAfterMs : -1, 400, "one request queued: two");
});

t.test("queue full: immediate 429 shed.queue_full", async (t) => {
  const { acquire } = setup({ classes: { sheddable: { maxQueue: 2 } } });
  acquire("blocker", "critical", 10);
  t.equal(acquire("q1", "sheddable").kind, "queued");
  t.equal(acquire("q2", "sheddable").kind, "queued");
  const full = acquire("q3", "sheddable");
  t.match(full, { kind: "shed", reason: "shed.queue_full", waitedMs: 0 });
});

t.test("a class without queueing is shed at once with shed.overload", async (t) => {
  const { acquire } = setup({ classes: { sheddable: { maxWaitMs: 0 } } });
  acquire("blocker", "critical", 10);
  t.match(acquire("s", "sheddable"), { kind: "shed", reason: "shed.overload" });
});

t.test("cancel while queued removes the waiter: no later admission, no leaked cost", async (t) => {
  const { acquire, clock, controller, settled } = setup();
  const blocker = ticketOf(acquire("blocker", "critical", 10));
  const attempt = acquire("gone", "standard", 3);
  if (attempt.kind !== "queued") throw new Error("expected queued");
  clock.advanceTo(40);
  t.equal(attempt.cancel(), 40, "returns the time waited");
  t.equal(attempt.cancel(), undefined, "a second cancel is a no-op");
  t.equal(controller.queueLength("standard"), 0);
  controller.release(blocker, { verdict: "success" });
  clock.advanceTo(10_000);
  t.equal(settled.length, 0, "neither admitted nor timed out");
  t.equal(controller.inFlightCost, 0);
});

t.test("release is idempotent per ticket", async (t) => {
  const { acquire, controller } = setup();
  const a = ticketOf(acquire("a", "standard", 4));
  ticketOf(acquire("b", "standard", 3));
  controller.release(a, {});
  controller.release(a, {});
  t.equal(controller.inFlightCost, 3);
});

t.test("an empty pool admits a request costlier than the whole budget", async (t) => {
  const { acquire, controller } = setup();
  t.equal(acquire("huge", "sheddable", 50).kind, "admitted");
  t.equal(controller.inFlightCost, 50);
});

t.test("circuit: failures open it, queued requests fail fast with 503, probes close it", async (t) => {
  const { acquire, clock, controller, settled } = setup();
  ticketOf(acquire("blocker", "critical", 6));
  const tickets = [1, 2, 3, 4].map((i) => ticketOf(acquire(`r${i}`, "critical", 1)));
  t.equal(
    acquire("waiting", "standard", 5).kind,
    "queued",
    "6 in flight + 5 exceeds standard's 9 even after the failures",
  );
  for (const ticket of tickets) controller.release(ticket, { verdict: "failure" });
  t.equal(controller.circuitState(), "open");
  // Retry-After: the rest of the 3 s cool-down plus a round trip for the probes (1 s while unknown).
  t.match(settled, [{ id: "waiting", decision: { kind: "shed", reason: "shed.circuit_open", retryAfterMs: 4_000 } }]);
  clock.advanceTo(1_000);
  t.match(acquire("fast-fail", "critical"), {
    kind: "shed",
    reason: "shed.circuit_open",
    retryAfterMs: 3_000,
  });
  clock.advanceTo(3_000);
  t.equal(controller.circuitState(), "half_open");
  const probe = ticketOf(acquire("probe", "sheddable"));
  t.equal(probe.probe, true);
  t.match(acquire("not-a-probe", "critical"), {
    kind: "shed",
    reason: "shed.circuit_open",
    retryAfterMs: 1_000,
  });
  controller.release(probe, { verdict: "success", latencyMs: 100 });
  t.equal(controller.circuitState(), "closed");
  t.equal(acquire("after", "standard").kind, "admitted");
});

t.test("the limit falls when latency runs far above the target ratio", async (t) => {
  const { acquire, clock, controller } = setup({
    limit: { initial: 40, min: 1, max: 100, minWindowSamples: 1, minWindowMs: 10 },
  });
  const before = controller.limit;
  // Requests that ran alone set the unloaded baseline (100 ms) ...
  for (let i = 0; i < 3; i++) {
    const ticket = ticketOf(acquire(`quiet${i}`, "critical", 1));
    clock.advanceTo(clock.nowMs + 100);
    controller.release(ticket, { verdict: "success", latencyMs: 100, predictedLatencyMs: 100 });
  }
  // ... then, sharing the upstream with others, they run 5× slower.
  const others = Array.from({ length: 5 }, (_, i) => ticketOf(acquire(`other${i}`, "critical", 1)));
  for (let i = 0; i < 30; i++) {
    const ticket = ticketOf(acquire(`r${i}`, "critical", 1));
    clock.advanceTo(clock.nowMs + 100);
    controller.release(ticket, { verdict: "success", latencyMs: 500, predictedLatencyMs: 100 });
  }
  t.equal(others.length, 5);
  t.ok(controller.limit < before / 2, `limit ${controller.limit} fell from ${before}`);
  t.ok(controller.limit >= 1);
});

t.test(
  "a request that ran alone is never read as overload, however slow: the upstream itself got slower",
  async (t) => {
    const { acquire, clock, controller } = setup({
      limit: { initial: 40, min: 1, max: 100, minWindowSamples: 1, minWindowMs: 10 },
    });
    for (let i = 0; i < 60; i++) {
      const ticket = ticketOf(acquire(`r${i}`, "critical", 1));
      clock.advanceTo(clock.nowMs + 100);
      controller.release(ticket, { verdict: "success", latencyMs: i < 3 ? 100 : 500, predictedLatencyMs: 100 });
    }
    t.ok(
      controller.limit >= 40 * 0.8 ** 3,
      `limit ${controller.limit.toFixed(1)} stayed up: the baseline followed the quiet samples`,
    );
  },
);

t.test("an idle budget does not grow, a used one under target does", async (t) => {
  const idle = setup({ limit: { initial: 40, min: 1, max: 1_000, minWindowSamples: 1, minWindowMs: 10 } });
  for (let i = 0; i < 30; i++) {
    const ticket = ticketOf(idle.acquire(`r${i}`, "critical", 1));
    idle.clock.advanceTo(idle.clock.nowMs + 100);
    idle.controller.release(ticket, { verdict: "success", latencyMs: 100, predictedLatencyMs: 100 });
  }
  t.equal(idle.controller.limit, 40, "one request in flight of 40 says nothing about capacity");

  const busy = setup({ limit: { initial: 40, min: 1, max: 1_000, minWindowSamples: 1, minWindowMs: 10 } });
  const held = Array.from({ length: 39 }, (_, i) => ticketOf(busy.acquire(`held${i}`, "critical", 1)));
  for (let i = 0; i < 30; i++) {
    const ticket = ticketOf(busy.acquire(`r${i}`, "critical", 1));
    busy.clock.advanceTo(busy.clock.nowMs + 100);
    busy.controller.release(ticket, { verdict: "success", latencyMs: 100, predictedLatencyMs: 100 });
  }
  t.ok(busy.controller.limit > 40, `grew to ${busy.controller.limit}`);
  t.equal(held.length, 39);
});

t.test("a release returns what the ticket held, and the limit learns at the request's real cost", async (t) => {
  const pool = setup({ limit: { initial: 100, min: 1, max: 100 } });
  // Priced at 8 (say, a max_tokens it never used), it did 1 cost unit's work, alone, in 10 ms.
  const priced = ticketOf(pool.acquire("priced", "critical", 8));
  const other = ticketOf(pool.acquire("other", "critical", 2));
  pool.controller.release(other, { verdict: "success" });
  pool.clock.advanceTo(pool.clock.nowMs + 10);
  t.equal(pool.controller.inFlightCost, 8);
  pool.controller.release(priced, { verdict: "success", latencyMs: 10, actualCost: 1 });
  t.equal(pool.controller.inFlightCost, 0, "the budget got back the 8 it held, not the 1 it used");
  // 10 ms per real cost unit: a request of cost 1 that takes 10 ms alone is unloaded (ratio 1). Learned
  // at its priced 8, 1.25 ms per unit would make the same request read as 4.7× slowed down.
  const next = ticketOf(pool.acquire("next", "critical", 1));
  pool.clock.advanceTo(pool.clock.nowMs + 10);
  t.equal(pool.controller.release(next, { verdict: "success", latencyMs: 10 }), 1);
});

t.test(
  "retries: admitted while there is room, then only as the retry budget allows; shed at once beyond it",
  async (t) => {
    const { acquire, controller } = setup({ retries: { ratio: 0.5, minPerSecond: 0, burst: 1 } });
    const retry = () => controller.acquire({ cost: 1, priority: "standard", tenant: "", retry: true }, () => undefined);
    t.equal(retry().kind, "admitted", "room in the budget: a retry costs nothing");
    for (let i = 0; i < 7; i++) ticketOf(acquire(`first${i}`, "standard"));
    t.equal(controller.inFlightCost, 8, "standard's share is full");
    t.equal(retry().kind, "queued", "the one saved retry waits like any request");
    const spent = retry();
    t.match(spent, { kind: "shed", reason: "shed.retry_budget" }, "no retry left: answered at once");
    t.equal(acquire("first", "standard").kind, "queued", "a first attempt still queues");
    t.equal(controller.queueLength("standard"), 2);
    for (let i = 0; i < 2; i++) ticketOf(acquire(`critical${i}`, "critical"));
    const critical = controller.acquire({ cost: 1, priority: "critical", tenant: "", retry: true }, () => undefined);
    t.equal(critical.kind, "queued", "a critical retry is not rationed: it waits like a first attempt");
  },
);

t.test("Retry-After is spread by retryAfterJitter", async (t) => {
  const spreads = [0, 0.5, 0.999].map((draw) => {
    const config = admissionSchema.parse({
      requestWeight: 0,
      limit: { initial: 1, min: 1, max: 1 },
      classes: { standard: { maxWaitMs: 0 } },
    });
    const clock = new VirtualClock();
    const controller = new AdmissionController(config, {
      now: clock.now,
      schedule: clock.schedule,
      random: () => draw,
    });
    controller.acquire({ cost: 1, priority: "critical", tenant: "" }, () => undefined);
    const shed = controller.acquire({ cost: 1, priority: "standard", tenant: "" }, () => undefined);
    return shed.kind === "shed" ? shed.retryAfterMs : undefined;
  });
  t.same(spreads, [1_000, 1_250, 1_499.5], "a 1 s wait advertised as 1 to 1.5 s");
});
