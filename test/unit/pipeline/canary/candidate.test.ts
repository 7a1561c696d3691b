import t from "tap";
import { CandidateState } from "../../../../src/pipeline/canary/candidate.js";
import { routeCanarySchema } from "../../../../src/pipeline/canary/config.js";

const settings = (autoReleaseAfter = 0) =>
  routeCanarySchema.parse({
    stable: "v1",
    candidates: [{ pool: "v2", weight: 0.2 }],
    quarantine: { probeRate: 0.01, autoReleaseAfter },
  });

t.test("serving → quarantined at the first confident verdict → released by an operator, afresh", async (t) => {
  let clock = 1_000;
  const state = new CandidateState(() => clock);
  const config = settings();
  t.equal(state.share(0.2, config), 0.2);
  let transition: ReturnType<CandidateState["record"]>;
  let answers = 0;
  do {
    clock += 10;
    answers++;
    transition = state.record(answers % 5 === 0 ? "violated" : "ok", config);
  } while (transition === undefined && answers < 1_000);
  t.equal(transition?.kind, "quarantined");
  t.ok(answers >= 30 && answers <= 60, `quarantined after ${answers} answers (20% violations)`);
  t.equal(state.quarantine?.since, clock);
  t.equal(state.share(0.2, config), 0.01, "probe share");
  t.equal(state.record("violated", config), undefined, "a probe changes nothing by itself");
  t.equal(state.window.answers, answers, "probes are not added to the evidence");
  t.match(state.release("operator"), { kind: "released", by: "operator" });
  t.equal(state.quarantine, undefined);
  t.same(state.window, { answers: 0, violations: 0, errors: 0 }, "fresh evidence");
  t.equal(state.release("operator"), undefined, "releasing a serving candidate does nothing");
});

t.test("automatic release after enough healthy probes in a row; a bad probe restarts the run", async (t) => {
  const state = new CandidateState(() => 0);
  const config = settings(3);
  for (let i = 0; i < 30; i++) state.record("error", config);
  t.ok(state.quarantine !== undefined);
  state.record("ok", config);
  state.record("ok", config);
  state.record("violated", config);
  t.equal(state.quarantine?.healthyProbes, 0);
  state.record("ok", config);
  state.record("ok", config);
  t.match(state.record("ok", config), { kind: "released", by: "auto" });
});

t.test(
  "the fleet: others' answers judged with this one's, a newer generation releases, an older one is ignored",
  async (t) => {
    const state = new CandidateState(() => 5_000);
    const config = settings();
    for (let i = 0; i < 10; i++) state.record(i % 3 === 0 ? "violated" : "ok", config);
    t.equal(state.quarantine, undefined, "10 answers alone are short of minRequests");
    const others = { answers: 20, violations: 6, errors: 0 };
    t.match(state.adoptFleet({ generation: 0, others, quarantine: undefined }, config), {
      kind: "quarantined",
      quarantine: { source: "local", evidence: { answers: 30, violations: 10 } },
    });
    t.same(state.window, { answers: 10, violations: 4, errors: 0 }, "its own part stays apart");

    t.match(
      state.adoptFleet(
        { generation: 1, others: { answers: 0, violations: 0, errors: 0 }, quarantine: undefined },
        config,
      ),
      {
        kind: "released",
        by: "fleet",
      },
    );
    t.equal(state.generation, 1);
    t.equal(state.releaseUnshared, false, "a release made elsewhere is not shared again");
    const stale = {
      since: 0,
      verdict: { healthy: false as const, reason: "violations" as const, rate: 1, lowerBound: 0.9, max: 0.01 },
      evidence: { answers: 30, violations: 30, errors: 0 },
    };
    t.equal(
      state.adoptFleet({ generation: 0, others, quarantine: stale }, config),
      undefined,
      "a released generation's quarantine",
    );
    t.match(
      state.adoptFleet({ generation: 1, others: { answers: 0, violations: 0, errors: 0 }, quarantine: stale }, config),
      {
        kind: "quarantined",
        quarantine: { source: "fleet", healthyProbes: 0 },
      },
    );
    t.match(state.release("operator"), { kind: "released", by: "operator" });
    t.equal(state.releaseUnshared, true, "shared at the next sync");
    state.releaseShared(2);
    t.same([state.generation, state.releaseUnshared], [2, false]);
  },
);
