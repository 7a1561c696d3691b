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
