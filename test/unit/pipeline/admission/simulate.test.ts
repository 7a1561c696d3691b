import t from "tap";
import { admissionSchema } from "../../../../src/pipeline/admission/config.js";
import { DEFAULT_MIX, type Scenario, scenarios, simulate } from "../../../../src/pipeline/admission/simulate.js";
import { DEFAULT_SERVER, DEMO_COSTS, DEMO_SLOT_SERVER } from "../../../../src/pipeline/admission/simulated-server.js";

// Virtual time: each run simulates tens of seconds in a few tens of milliseconds.
const WARMUP_MS = 15_000;

// DEFAULT_SERVER is limited by total work (a batch capacity in cost units), which a pure cost budget
// (requestWeight 0) models exactly; the limit assertions compare cost units with its batch. The
// default per-request charge on this server has its own test below.
const WORK_LIMITED = { admission: admissionSchema.parse({ requestWeight: 0 }) };

t.test("same inputs, same report (deterministic)", async (t) => {
  const a = simulate(scenarios.steady(2, 20_000), { ...WORK_LIMITED, seed: 3 });
  const b = simulate(scenarios.steady(2, 20_000), { ...WORK_LIMITED, seed: 3 });
  t.same(a, b);
});

for (const load of [0.5, 0.7]) {
  t.test(`below capacity (${load}x) nothing is shed`, async (t) => {
    const report = simulate(scenarios.steady(load), { ...WORK_LIMITED, measureFromMs: WARMUP_MS });
    for (const priority of ["critical", "standard", "sheddable"] as const) {
      t.equal(report.classes[priority].shed, 0, `${priority} not shed`);
      t.ok(report.classes[priority].offered > 100, `${priority} had traffic`);
    }
  });
}

for (const load of [2, 4]) {
  for (const prediction of ["exact", "none"] as const) {
    t.test(`${load}x overload, prediction ${prediction}: goodput, critical kept, sheddable shed first`, async (t) => {
      const report = simulate(scenarios.steady(load, 60_000), {
        ...WORK_LIMITED,
        measureFromMs: WARMUP_MS,
        prediction,
      });
      const { critical, standard, sheddable } = report.classes;
      t.ok(report.goodputShare >= 0.9, `goodput ${report.goodputShare.toFixed(3)} of capacity`);
      t.ok(critical.keptShare >= 0.99, `critical kept ${critical.keptShare.toFixed(4)}`);
      t.ok(
        standard.keptShare > sheddable.keptShare,
        `standard ${standard.keptShare.toFixed(3)} > sheddable ${sheddable.keptShare.toFixed(3)}`,
      );
      t.ok(sheddable.keptShare < 0.1, "sheddable carries the shedding");
    });
  }
}

// Request size predicts work only roughly (a max_tokens budget is not the tokens generated): with
// σ = 0.3 per-request noise, a minimum-based unloaded estimate (the previous design) sat ~40% below
// the typical request, read normal latency as overload and shed a third of a 0.7x load.
const NOISY_SERVER = { ...DEFAULT_SERVER, noise: 0.3 };

t.test("noisy sizes, 0.7x: the unloaded baseline is a quiet-sample mean, so nothing is shed", async (t) => {
  const report = simulate(scenarios.steady(0.7, 120_000), {
    ...WORK_LIMITED,
    measureFromMs: WARMUP_MS,
    prediction: "none",
    server: NOISY_SERVER,
  });
  for (const priority of ["critical", "standard", "sheddable"] as const)
    t.equal(report.classes[priority].shed, 0, `${priority} not shed`);
  const late = report.trace.filter((point) => point.atMs >= 60_000);
  t.ok(
    late.every((point) => point.ratio < 1.8),
    "the ratio reads below the target for as long as the run lasts (no drift)",
  );
});

for (const load of [2, 4]) {
  t.test(`noisy sizes, ${load}x: goodput and critical kept`, async (t) => {
    const report = simulate(scenarios.steady(load, 90_000), {
      ...WORK_LIMITED,
      measureFromMs: WARMUP_MS,
      prediction: "none",
      server: NOISY_SERVER,
    });
    t.ok(report.goodputShare >= 0.9, `goodput ${report.goodputShare.toFixed(3)} of capacity`);
    t.ok(report.classes.critical.keptShare >= 0.99, `critical kept ${report.classes.critical.keptShare.toFixed(4)}`);
  });
}

t.test("without admission control the same 4x overload collapses goodput", async (t) => {
  const report = simulate(scenarios.steady(4, 40_000), { ...WORK_LIMITED, measureFromMs: WARMUP_MS, protect: false });
  t.ok(report.goodputShare < 0.2, `unprotected goodput ${report.goodputShare.toFixed(3)}`);
  t.equal(report.classes.critical.shed, 0);
});

t.test("convergence: under 2x overload the limit settles near the server's capacity", async (t) => {
  const report = simulate(scenarios.steady(2, 60_000), { ...WORK_LIMITED, traceEveryMs: 250 });
  const settled = report.trace.filter((point) => point.atMs >= 20_000);
  const batch = DEFAULT_SERVER.batchCost;
  // Capacity is a full batch; the 1.8 latency target sits a little beyond it (time-sharing).
  for (const point of settled) {
    t.ok(
      point.limit >= 0.8 * batch && point.limit <= 2.2 * batch,
      `t=${point.atMs} limit ${point.limit.toFixed(0)} near ${batch}`,
    );
  }
  const mean = settled.reduce((sum, point) => sum + point.ratio, 0) / settled.length;
  t.ok(mean > 1.5 && mean < 2.1, `mean smoothed ratio ${mean.toFixed(2)} near the 1.8 target`);
});

/** Coefficient of variation of the limit once settled (after 20 s). */
function limitVariation(trace: readonly { atMs: number; limit: number }[]): number {
  const limits = trace.filter((point) => point.atMs >= 20_000).map((point) => point.limit);
  const mean = limits.reduce((sum, limit) => sum + limit, 0) / limits.length;
  const variance = limits.reduce((sum, limit) => sum + (limit - mean) ** 2, 0) / limits.length;
  return Math.sqrt(variance) / mean;
}

for (const [load, bound] of [
  [2, 0.15],
  [4, 0.2],
] as const) {
  t.test(`steady ${load}x overload: the limit settles (coefficient of variation ≤ ${bound})`, async (t) => {
    // The guard's defaults (a per-request charge, damped corrections); before damping and the
    // stricter slow-start re-entry these runs measured 0.32–0.49 (2x) and 0.19–0.34 (4x).
    for (const seed of [1, 2, 3]) {
      for (const prediction of ["exact", "none"] as const) {
        const report = simulate(scenarios.steady(load, 60_000), { seed, prediction, measureFromMs: 20_000 });
        const variation = limitVariation(report.trace);
        t.ok(variation <= bound, `seed ${seed}, prediction ${prediction}: ${variation.toFixed(3)}`);
        t.ok(report.classes.critical.keptShare >= 0.99, `critical kept ${report.classes.critical.keptShare}`);
      }
    }
  });
}

t.test("timeouts are censored samples: the limit falls, the circuit stays closed, critical fares better", async (t) => {
  // Half the capacity gone at 1.5x load: requests run into the 3× timeout the complexity stage sets.
  const scenario = scenarios.capacityDrop(1, 0.5, 15_000, 60_000);
  const run = (as: "censored" | "failure") =>
    simulate(scenario, { measureFromMs: 20_000, upstreamTimeout: { factor: 3, floorMs: 1_000, as } });
  const censored = run("censored");
  const failure = run("failure");
  t.equal(censored.shedByReason["shed.circuit_open"], undefined, "a slow upstream is the limit's to fix");
  t.ok((failure.shedByReason["shed.circuit_open"] ?? 0) > 100, "timeouts counted as failures opened the circuit");
  t.ok(censored.classes.critical.keptShare >= 0.99, `critical kept ${censored.classes.critical.keptShare}`);
  t.ok(
    censored.classes.critical.keptShare > failure.classes.critical.keptShare,
    `critical ${censored.classes.critical.keptShare} vs ${failure.classes.critical.keptShare}`,
  );
  t.ok(censored.goodputShare > failure.goodputShare, `goodput ${censored.goodputShare} vs ${failure.goodputShare}`);
});

t.test("step load 0.5x → 2x: converges within 10 s and keeps critical", async (t) => {
  const report = simulate(scenarios.stepLoad(0.5, 2, 10_000, 50_000), {
    ...WORK_LIMITED,
    measureFromMs: 20_000,
    traceEveryMs: 250,
  });
  const after = report.trace.filter((point) => point.atMs >= 20_000);
  // 2.5 × batch: standard and sheddable fill only 0.8 / 0.6 of the limit, so it sits above the batch.
  const peak = Math.max(...after.map((point) => point.limit));
  t.ok(
    peak <= 2.5 * DEFAULT_SERVER.batchCost,
    `limit came down from the idle-time high (peak ${peak.toFixed(0)} after 20 s)`,
  );
  t.ok(report.classes.critical.keptShare >= 0.99);
  t.ok(report.goodputShare >= 0.9, `goodput ${report.goodputShare.toFixed(3)}`);
});

t.test("spike 0.7x → 6x for 3 s: sheds lower classes first and recovers", async (t) => {
  const spike = simulate(scenarios.spike(0.7, 6, 10_000, 3_000, 40_000), {
    ...WORK_LIMITED,
    measureFromMs: 10_000,
    measureToMs: 13_000,
  });
  t.ok(spike.classes.critical.keptShare > spike.classes.standard.keptShare);
  t.ok(spike.classes.standard.keptShare >= spike.classes.sheddable.keptShare);
  const after = simulate(scenarios.spike(0.7, 6, 10_000, 3_000, 40_000), { ...WORK_LIMITED, measureFromMs: 23_000 });
  for (const priority of ["critical", "standard", "sheddable"] as const) {
    t.equal(after.classes[priority].shed, 0, `${priority}: nothing shed 10 s after the spike`);
  }
});

t.test("capacity drop to half: limit follows within 10 s, critical kept", async (t) => {
  const report = simulate(scenarios.capacityDrop(1.5, 0.5, 15_000, 50_000), {
    ...WORK_LIMITED,
    measureFromMs: 25_000,
    traceEveryMs: 250,
  });
  const late = report.trace.filter((point) => point.atMs >= 25_000);
  const batch = DEFAULT_SERVER.batchCost * 0.5;
  for (const point of late)
    t.ok(point.limit <= 2.2 * batch, `t=${point.atMs} limit ${point.limit.toFixed(0)} for a batch of ${batch}`);
  t.ok(report.classes.critical.keptShare >= 0.99, `critical kept ${report.classes.critical.keptShare.toFixed(4)}`);
  t.ok(report.goodputShare >= 0.9, `goodput ${report.goodputShare.toFixed(3)} of the remaining capacity`);
});

t.test("mix shift to 60% critical at 2x: critical takes the capacity, lower classes yield", async (t) => {
  const report = simulate(scenarios.mixShift(2, { critical: 0.6, standard: 0.3, sheddable: 0.1 }, 15_000, 50_000), {
    ...WORK_LIMITED,
    measureFromMs: 25_000,
  });
  const { critical, standard, sheddable } = report.classes;
  // Critical alone now offers 1.2x capacity: it cannot all fit, but it gets nearly everything.
  t.ok(critical.keptShare >= 0.75, `critical kept ${critical.keptShare.toFixed(3)}`);
  t.ok(standard.keptShare < 0.05 && sheddable.keptShare < 0.05, "lower classes yield their share");
  // Critical itself is over capacity and queues up to its max wait, so small requests miss a 4x SLO.
  t.ok(report.goodputShare >= 0.6, `goodput ${report.goodputShare.toFixed(3)}`);
});

// The demo model of `make bench-shed`: 4 slots whatever the request sizes (a max batch size). A pure
// cost budget (requestWeight 0) with the old class shares (standard 0.9, sheddable 0.8, waits
// 400 / 150 ms) let the number of requests in flight swing with the size mix, so slots sat idle
// while small requests queued inside the server: 56% / 53% goodput and 94% / 78% critical kept at
// 2x / 4x here, 66-72% / 47-55% live.
const SLOT_RUN = {
  server: DEMO_SLOT_SERVER,
  costs: DEMO_COSTS,
  prediction: "none",
  sloFloorMs: 500,
  measureFromMs: WARMUP_MS,
} as const;
const SLOT_ADMISSION = admissionSchema.parse({
  limit: { initial: 16_000, max: 1_000_000, usePredictedLatency: false },
});
/** The guard's settings in `make bench-shed` (config/default.yaml's initial budget). */
const BENCH_ADMISSION = admissionSchema.parse({ limit: { initial: 40_000 } });

for (const load of [2, 4]) {
  t.test(`slot-limited server, ${load}x: the per-request charge keeps slots busy and critical whole`, async (t) => {
    const report = simulate(scenarios.steady(load, 60_000), { ...SLOT_RUN, admission: SLOT_ADMISSION });
    t.ok(report.goodputShare >= 0.8, `goodput ${report.goodputShare.toFixed(3)} of capacity`);
    t.ok(report.classes.critical.keptShare >= 0.97, `critical kept ${report.classes.critical.keptShare.toFixed(4)}`);
    t.ok(report.classes.standard.keptShare > report.classes.sheddable.keptShare, "sheddable shed first");
  });
}

t.test("slot-limited server, 0.5x: nothing shed", async (t) => {
  const report = simulate(scenarios.steady(0.5, 60_000), { ...SLOT_RUN, admission: SLOT_ADMISSION });
  for (const priority of ["critical", "standard", "sheddable"] as const)
    t.equal(report.classes[priority].shed, 0, `${priority} not shed`);
});

t.test("slot-limited server, 4x: a pure cost budget (requestWeight 0) leaves slots idle", async (t) => {
  const pureCost = admissionSchema.parse({ ...SLOT_ADMISSION, requestWeight: 0 });
  const charged = simulate(scenarios.steady(4, 60_000), { ...SLOT_RUN, admission: SLOT_ADMISSION, traceEveryMs: 250 });
  const pure = simulate(scenarios.steady(4, 60_000), { ...SLOT_RUN, admission: pureCost, traceEveryMs: 250 });
  const busy = (report: typeof pure): number => {
    const settled = report.trace.filter((point) => point.atMs >= WARMUP_MS);
    return (
      settled.reduce((sum, point) => sum + point.serverRunning, 0) / settled.length / (DEMO_SLOT_SERVER.slots ?? 1)
    );
  };
  t.ok(
    busy(charged) > busy(pure) + 0.1,
    `slots busy ${busy(charged).toFixed(2)} with the charge, ${busy(pure).toFixed(2)} without`,
  );
  t.ok(
    charged.goodputShare > pure.goodputShare + 0.1,
    `goodput ${charged.goodputShare.toFixed(3)} vs ${pure.goodputShare.toFixed(3)}`,
  );
});

t.test(
  "work-limited server with the default per-request charge: nothing shed below capacity, goodput kept",
  async (t) => {
    const below = simulate(scenarios.steady(0.7, 60_000), { measureFromMs: WARMUP_MS });
    for (const priority of ["critical", "standard", "sheddable"] as const)
      t.equal(below.classes[priority].shed, 0, `${priority} not shed`);
    for (const load of [2, 4]) {
      const report = simulate(scenarios.steady(load, 60_000), { measureFromMs: WARMUP_MS });
      t.ok(report.goodputShare >= 0.9, `${load}x goodput ${report.goodputShare.toFixed(3)}`);
      // A count-like budget lets critical wait a little more here than a pure cost budget (100%).
      t.ok(
        report.classes.critical.keptShare >= 0.97,
        `${load}x critical kept ${report.classes.critical.keptShare.toFixed(4)}`,
      );
    }
  },
);

t.test(
  "retry storm at 4x: immediate retries (3) never reach the upstream; the retry budget keeps critical",
  async (t) => {
    const storm = (retries: { max: number; delayMs: number; marked: boolean }, protect = true) =>
      simulate(scenarios.steady(4, 60_000), {
        measureFromMs: 20_000,
        protect,
        retries,
        upstreamTimeout: { factor: 3, floorMs: 1_000, as: "censored" },
      });
    const offered = (report: ReturnType<typeof storm>) =>
      report.classes.critical.offered + report.classes.standard.offered + report.classes.sheddable.offered;
    const criticalGood = (report: ReturnType<typeof storm>) =>
      report.classes.critical.good / report.classes.critical.offered;
    const marked = storm({ max: 3, delayMs: 0, marked: true });
    const unmarked = storm({ max: 3, delayMs: 0, marked: false });
    const unprotected = storm({ max: 3, delayMs: 0, marked: true }, false);
    const amplification = marked.upstreamAttempts / offered(marked);
    t.ok(
      marked.attempts / offered(marked) > 3,
      `clients sent ${(marked.attempts / offered(marked)).toFixed(2)} attempts per request`,
    );
    t.ok(amplification <= 1.2, `upstream attempts per logical request ${amplification.toFixed(2)}`);
    t.ok(
      unprotected.upstreamAttempts / offered(unprotected) > 3,
      `unprotected: ${(unprotected.upstreamAttempts / offered(unprotected)).toFixed(2)} per request`,
    );
    t.ok(
      marked.goodputShare >= 0.9,
      `goodput ${marked.goodputShare.toFixed(3)}; unprotected ${unprotected.goodputShare.toFixed(3)}`,
    );
    // Marked retries were worth 0.948 against 0.939 unmarked before the robust window ratio and the
    // longer sheddable wait; since then both reach 0.971 (critical retries are never rationed, and
    // at 4x the lower classes' retries no longer cost critical requests their SLO either way).
    t.ok(
      criticalGood(marked) >= criticalGood(unmarked) && criticalGood(marked) >= 0.95,
      `critical within SLO ${criticalGood(marked).toFixed(3)} with marked retries, ${criticalGood(unmarked).toFixed(3)} unmarked`,
    );
  },
);

// A kind of request whose size does not describe its work and that never has the upstream to itself
// (here 30% of arrivals, ~1.5 s whatever their size, never sent to an idle server). Its size buckets
// learn their unloaded latency from quiet requests of the ordinary kind, or borrow another bucket's,
// so every one of its requests read as 10-300x overload. With the previous estimator (the plain mean
// of a window's ratios, no per-bucket excess) the same runs shed 0, 258 and 1073 of ~1200 requests
// (seed 3: 90%, critical kept 33%) while the unprotected server served 93-96% within the SLO.
t.test("a slow kind of request that never runs alone does not read as overload", async (t) => {
  for (const seed of [1, 2, 3]) {
    const options = {
      seed,
      prediction: "none",
      measureFromMs: 20_000,
      slowKind: { share: 0.3, latencyMs: 1_500, costs: { median: 2, sigma: 0.3, max: 4 } },
    } as const;
    const guarded = simulate(scenarios.steady(0.5, 60_000), options);
    const unprotected = simulate(scenarios.steady(0.5, 60_000), { ...options, protect: false });
    const { critical, standard, sheddable } = guarded.classes;
    const offered = critical.offered + standard.offered + sheddable.offered;
    const shed = critical.shed + standard.shed + sheddable.shed;
    t.ok(unprotected.goodputShare >= 0.9, `seed ${seed}: the server has room (${unprotected.goodputShare.toFixed(3)})`);
    t.ok(shed <= 0.005 * offered, `seed ${seed}: ${shed} of ${offered} shed`);
    t.equal(critical.keptShare, 1, `seed ${seed}: critical kept`);
    t.ok(
      guarded.goodputShare >= unprotected.goodputShare - 0.01,
      `seed ${seed}: goodput ${guarded.goodputShare.toFixed(3)}, unprotected ${unprotected.goodputShare.toFixed(3)}`,
    );
    const late = guarded.trace.filter((point) => point.atMs >= 20_000);
    t.ok(
      late.every((point) => point.ratio < 1.8),
      `seed ${seed}: the ratio stays below the target (max ${Math.max(...late.map((point) => point.ratio)).toFixed(2)})`,
    );
  }
});

// `make bench-shed`'s backoff@1x: closed-loop users (think 1 s) sized to offer the demo model's
// capacity at unloaded latency, retrying up to 3 times after the wait a shed answer asks for. Users
// that wait on their answers offer 0.85-0.9 of capacity in practice, with the bursts of exponential
// think times. Before the guard waited out bursts (a class waits its whole maxWaitMs while arrivals
// do not outpace completions; sheddable's maxWaitMs 300 -> 900), these seeds shed 0 / 3.5 / 0.6 / 1.4 /
// 0.4 / 3.4 / 0 / 0.6% of attempts (live: 0.8-4.8%); the target is 2%.
t.test("backoff clients at 1x capacity (slot-limited server): at most 2% of attempts shed", async (t) => {
  const atCapacity: Scenario = {
    name: "backoff 1x",
    durationMs: 80_000,
    // A quiet start, as the bench's unloaded samples give the guard its baseline.
    phases: [
      { atMs: 0, load: 0.1, mix: DEFAULT_MIX, capacity: 1 },
      { atMs: 8_000, load: 1 },
    ],
  };
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    const report = simulate(atCapacity, {
      ...SLOT_RUN,
      admission: BENCH_ADMISSION,
      measureFromMs: 20_000,
      seed,
      users: { thinkMs: 1_000 },
      retries: { max: 3, delayMs: 500, marked: true, honourRetryAfter: true },
    });
    const shedShare = (report.attempts - report.upstreamAttempts) / report.attempts;
    t.ok(shedShare <= 0.02, `seed ${seed}: ${(100 * shedShare).toFixed(2)}% of ${report.attempts} attempts shed`);
    t.equal(report.classes.critical.shed, 0, `seed ${seed}: no critical request shed`);
  }
});
