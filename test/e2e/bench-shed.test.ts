// Keeps `make bench-shed` runnable: the same harness at a tiny load (seconds per set-up), through
// the real Envoy in all three set-ups, with one short retry storm of closed-loop users, alone and
// beside a second pool in a 5xx storm. It checks the bookkeeping, not the numbers.
import t from "tap";
import { runShedBench } from "../../bench/shed/harness.js";
import { formatTable } from "../../bench/shed/report.js";
import { formatRetryTable, retryRunInconsistencies } from "../../bench/shed/retry-report.js";
import { DEFAULT_OPTIONS, PRIORITIES } from "../../bench/shed/workload.js";

t.test("the load-shedding bench runs end to end at a tiny load", async (t) => {
  const report = await runShedBench({
    ...DEFAULT_OPTIONS,
    points: [0.5, 2],
    pointMs: 1_500,
    warmUpMs: 0,
    calibrationMs: 1_500,
    unloadedSamples: 10,
    retry: {
      scenarios: [
        { policy: "immediate", load: 2 },
        { policy: "immediate", load: 2, companion: "storm" },
      ],
      repeats: 1,
      scenarioMs: 2_000,
      thinkMs: 500,
      attemptTimeoutMs: 4_000,
    },
  });
  t.ok(report.calibration.capacityPerSecond > 0, `capacity ${report.calibration.capacityPerSecond} req/s`);
  t.same(
    report.points.map((point) => `${point.variant}@${point.load}`),
    [
      "none@0.5",
      "none@2",
      "adaptive_concurrency@0.5",
      "adaptive_concurrency@2",
      "guard@0.5",
      "guard@2",
      "critical_only@0.5",
      "critical_only@2",
    ],
  );
  for (const variant of DEFAULT_OPTIONS.variants)
    t.ok(report.calibration.unloaded[variant] !== undefined, `unloaded latency of ${variant}`);
  for (const point of report.points) {
    const offered = PRIORITIES.reduce((sum, priority) => sum + point.byClass[priority].offered, 0);
    if (point.variant === "critical_only") {
      t.equal(offered, point.byClass.critical.offered, "the lower bound sends critical requests only");
    } else {
      // offeredPerSecond is rounded to 0.01/s, so the scheduled count may differ from it by one.
      t.ok(
        Math.abs(offered - point.offeredPerSecond * point.durationSeconds) <= 1,
        `${point.variant}@${point.load}: open loop sent its schedule (${offered})`,
      );
    }
    for (const priority of PRIORITIES) {
      const stats = point.byClass[priority];
      t.equal(
        stats.ok + stats.shed + stats.failed,
        stats.offered,
        `${point.variant}@${point.load} ${priority}: every request accounted for`,
      );
      t.ok(stats.good <= stats.ok);
    }
    if (point.variant === "none")
      t.equal(
        PRIORITIES.reduce((sum, priority) => sum + point.byClass[priority].shed, 0),
        0,
        "no protection sheds nothing",
      );
  }
  // Envoy strips a client's class header: the classes reach the guard only from source addresses.
  const classes = report.guardClasses;
  for (const priority of PRIORITIES)
    t.ok((classes?.[priority] ?? 0) > 0, `the guard classed ${classes?.[priority]} ${priority} requests by address`);
  const table = formatTable(report);
  for (const variant of DEFAULT_OPTIONS.variants) t.match(table, variant);

  const retried = ["none", "adaptive_concurrency", "guard"];
  t.same(
    report.retry.runs.map((run) => `${run.variant} ${run.scenario} #${run.repeat}`),
    retried.flatMap((variant) => [`${variant} immediate@2x #1`, `${variant} immediate@2x+storm #1`]),
    "the retry scenario ran in every protection set-up (not in the open-loop lower bound)",
  );
  t.ok((report.retry.users["immediate@2x"] ?? 0) > 0, `${report.retry.users["immediate@2x"]} closed-loop users`);
  for (const run of report.retry.runs) {
    t.same(retryRunInconsistencies(run), [], `${run.variant}: the run's counts add up`);
    t.ok(run.logical > 0, `${run.variant}: ${run.logical} logical requests`);
    t.ok(run.clientAttemptsPerLogical >= 1, `${run.variant}: at least one attempt per logical request`);
    t.ok(run.critical.logical > 0, `${run.variant}: the mix has critical requests`);
    if (run.scenario.endsWith("+storm")) {
      const storm = run.companion;
      t.ok((storm?.logical ?? 0) > 0, `${run.variant}: ${storm?.logical} requests to the pool in a 5xx storm`);
      t.notOk(
        Object.keys(storm?.attemptOutcomes ?? {}).includes("200"),
        `${run.variant}: the storm pool answered no 200 (${JSON.stringify(storm?.attemptOutcomes)})`,
      );
    }
    if (run.variant === "none") {
      t.equal(run.upstreamAttempts, run.clientAttempts, "without protection every attempt reaches the model");
      t.ok(run.amplification >= 1, `amplification ${run.amplification}`);
      t.equal(run.shedAttempts, 0, "no protection sheds nothing");
    }
  }
  t.same(
    report.retry.worst.map((worst) => [worst.variant, worst.runs]),
    retried.flatMap((variant) => [
      [variant, 1],
      [variant, 1],
    ]),
  );
  const retryTable = formatRetryTable(report.retry.worst);
  for (const variant of retried) t.match(retryTable, variant);
});
