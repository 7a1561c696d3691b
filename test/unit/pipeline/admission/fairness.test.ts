// Tenant fairness in the admission controller, on virtual time: within one class, deficit round
// robin gives each backlogged tenant an equal share of the budget, so a tenant offering ten times
// its share takes only what the well-behaved tenants leave.
import t from "tap";
import { admissionSchema } from "../../../../src/pipeline/admission/config.js";
import { AdmissionController, type Decision } from "../../../../src/pipeline/admission/controller.js";
import { VirtualClock } from "../../../../src/pipeline/admission/virtual-clock.js";

const SERVICE_MS = 100;
/** The standard class's share of a pinned budget of 10: eight requests in flight. */
const SLOTS = 8;
const CAPACITY_PER_S = (SLOTS * 1000) / SERVICE_MS;
const FAIR_SHARE_PER_S = CAPACITY_PER_S / 3;
const DURATION_MS = 20_000;

/**
 * Three tenants in the standard class send at fixed rates (multiples of a fair share); every admitted
 * request holds its slot for SERVICE_MS. Returns each tenant's admitted requests per second.
 * `keyed: false` gives every request the same fairness key (what the guard did before the tenant
 * reached admission).
 */
function run(offered: Readonly<Record<string, number>>, keyed = true, maxQueue = 10_000): Record<string, number> {
  const config = admissionSchema.parse({
    requestWeight: 0,
    limit: { initial: 10, min: 10, max: 10 },
    classes: { standard: { maxWaitMs: 2_000, maxWaitLatencies: 20, maxQueue } },
  });
  const clock = new VirtualClock();
  const controller = new AdmissionController(config, { now: clock.now, schedule: clock.schedule });
  const admitted: Record<string, number> = Object.fromEntries(Object.keys(offered).map((tenant) => [tenant, 0]));
  const settle = (tenant: string) => (decision: Decision) => {
    if (decision.kind !== "admitted") return;
    admitted[tenant] = (admitted[tenant] ?? 0) + 1;
    clock.schedule(SERVICE_MS, () =>
      controller.release(decision.ticket, { verdict: "success", latencyMs: SERVICE_MS }),
    );
  };
  for (const [tenant, multiple] of Object.entries(offered)) {
    const everyMs = 1000 / (multiple * FAIR_SHARE_PER_S);
    const arrive = () => {
      const attempt = controller.acquire(
        { cost: 1, priority: "standard", tenant: keyed ? tenant : "" },
        settle(tenant),
      );
      if (attempt.kind !== "queued") settle(tenant)(attempt);
      if (clock.nowMs + everyMs < DURATION_MS) clock.schedule(everyMs, arrive);
    };
    clock.schedule(0, arrive);
  }
  clock.advanceTo(DURATION_MS);
  return Object.fromEntries(Object.entries(admitted).map(([tenant, count]) => [tenant, count / (DURATION_MS / 1000)]));
}

t.test("a tenant offering 10× its share leaves two well-behaved tenants what they ask for", async (t) => {
  const rates = run({ greedy: 10, b: 0.9, c: 0.9 });
  const asked = 0.9 * FAIR_SHARE_PER_S;
  t.ok(rates.b! >= 0.95 * asked, `b got ${rates.b!.toFixed(1)}/s of the ${asked.toFixed(1)}/s it asked`);
  t.ok(rates.c! >= 0.95 * asked, `c got ${rates.c!.toFixed(1)}/s of the ${asked.toFixed(1)}/s it asked`);
  t.ok(rates.greedy! <= CAPACITY_PER_S - 2 * 0.95 * asked, `greedy got ${rates.greedy!.toFixed(1)}/s: the rest`);
  t.ok(rates.greedy! >= 0.9 * (CAPACITY_PER_S - 2 * asked), "and the budget they leave is not wasted");

  const unkeyed = run({ greedy: 10, b: 0.9, c: 0.9 }, false);
  t.ok(unkeyed.b! < 0.5 * asked, `without tenants, b got ${unkeyed.b!.toFixed(1)}/s: the measure sees the difference`);
});

t.test("when every tenant wants more than its share, each gets a third", async (t) => {
  const rates = run({ greedy: 10, b: 2, c: 2 });
  for (const tenant of ["greedy", "b", "c"]) {
    const rate = rates[tenant]!;
    t.ok(
      Math.abs(rate - FAIR_SHARE_PER_S) <= 0.05 * FAIR_SHARE_PER_S,
      `${tenant}: ${rate.toFixed(1)}/s, fair share ${FAIR_SHARE_PER_S.toFixed(1)}/s`,
    );
  }
});

t.test("a flood that fills the class's queue is shed from its own backlog, not the others'", async (t) => {
  // 20 places: the greedy tenant alone would keep them full.
  const rates = run({ greedy: 10, b: 0.9, c: 0.9 }, true, 20);
  const asked = 0.9 * FAIR_SHARE_PER_S;
  t.ok(rates.b! >= 0.95 * asked, `b got ${rates.b!.toFixed(1)}/s of the ${asked.toFixed(1)}/s it asked`);
  t.ok(rates.c! >= 0.95 * asked, `c got ${rates.c!.toFixed(1)}/s of the ${asked.toFixed(1)}/s it asked`);
});
