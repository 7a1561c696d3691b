import t from "tap";
import { compareVersion } from "../../../../src/pipeline/drift/compare.js";
import { DEFAULT_THRESHOLDS } from "../../../../src/pipeline/drift/config.js";
import { type InputReading, VersionProfile } from "../../../../src/pipeline/drift/profile.js";

const OPTIONS = { relativeAccuracy: 0.02, maxCategories: 16 };
const SPECS = [
  { path: "label", kind: "categorical" },
  { path: "score", kind: "numeric" },
] as const;
const COMPARE = { minSamples: 200, thresholds: DEFAULT_THRESHOLDS };

/** A profile of `count` answers, the i-th from answer(i), each asked with input(i). */
function profileOf(
  version: string,
  count: number,
  answer: (i: number) => { label?: string; score?: number | null },
  input: (i: number) => InputReading = (i) => ({ promptTokens: 20 + (i % 30), cost: 100 + (i % 50), tier: "light" }),
): VersionProfile {
  const profile = new VersionProfile(version, SPECS, OPTIONS);
  for (let i = 0; i < count; i++) {
    const output = answer(i);
    profile.observePayload((index) => (index === 0 ? output.label : output.score));
    profile.observeInput(input(i));
  }
  return profile;
}

/** The conforming model: mostly POSITIVE, scores spread over [0.55, 0.99]. */
const v1 = (i: number) => ({ label: i % 5 === 0 ? "NEGATIVE" : "POSITIVE", score: 0.55 + ((i * 37) % 45) / 100 });

t.test("fewer than minSamples answers on either side give no verdict, whatever the scores", async (t) => {
  const baseline = profileOf("v1", 1000, v1);
  const collapsed = profileOf("v2", 199, () => ({ label: "NEUTRAL", score: 0.98 }));
  const small = compareVersion(collapsed, baseline, COMPARE);
  t.equal(small.verdict, "insufficient_data");
  t.same(small.fields, [], "no scores are published on a small sample");
  t.equal(compareVersion(baseline, profileOf("v0", 150, v1), COMPARE).verdict, "insufficient_data", "small baseline");
  t.equal(compareVersion(baseline, undefined, COMPARE).verdict, "insufficient_data", "no baseline yet");
  t.equal(compareVersion(baseline, baseline, COMPARE).verdict, "baseline");
});

t.test("the same model on other inputs of the same distribution is stable", async (t) => {
  const baseline = profileOf("v1", 2000, v1);
  const same = profileOf("v1b", 500, (i) => v1(i + 7));
  const drift = compareVersion(same, baseline, COMPARE);
  t.equal(drift.verdict, "stable", JSON.stringify(drift.fields));
  for (const field of drift.fields) t.same(field.drifting, [], `${field.field} does not drift`);
});

t.test("a collapse is flagged on the collapsed field, by variance ratio, Wasserstein and mode share", async (t) => {
  const baseline = profileOf("v1", 1000, v1);
  const collapsed = profileOf("v2", 300, (i) => ({ ...v1(i), score: 0.98 }));
  const drift = compareVersion(collapsed, baseline, COMPARE);
  t.equal(drift.verdict, "model_drift");
  const [worst, second] = drift.fields;
  t.equal(worst?.field, "score", "the score is the top drifting field");
  t.equal(worst?.scores.variance_ratio, 0);
  for (const method of ["psi", "wasserstein", "variance_ratio", "mode_share_delta"] as const)
    t.ok(worst?.drifting.includes(method), `score drifts by ${method}`);
  t.same(second?.drifting, [], "the label did not move");
});

t.test("a label shift is flagged by PSI and Jensen–Shannon distance", async (t) => {
  const baseline = profileOf("v1", 1000, v1);
  const shifted = profileOf("v3", 400, (i) => (i % 10 < 6 ? { label: "NEUTRAL", score: 0.5 } : v1(i)));
  const drift = compareVersion(shifted, baseline, COMPARE);
  t.equal(drift.verdict, "model_drift");
  const label = drift.fields.find((field) => field.field === "label");
  t.ok(label?.drifting.includes("psi"));
  t.ok(label?.drifting.includes("js_distance"));
  t.ok((label?.scores.psi ?? 0) > 1, `psi ${label?.scores.psi}`);
});

t.test("a field that goes missing is flagged by its missing rate", async (t) => {
  const baseline = profileOf("v1", 1000, v1);
  const nulls = profileOf("v4", 400, (i) => ({ ...v1(i), score: i % 4 === 0 ? null : v1(i).score }));
  const score = compareVersion(nulls, baseline, COMPARE).fields.find((field) => field.field === "score");
  t.equal(score?.scores.missing_delta, 0.25);
  t.ok(score?.drifting.includes("missing_delta"));
});

t.test("outputs that moved with their inputs are input drift, not model drift", async (t) => {
  const baseline = profileOf("v1", 1000, v1);
  // The same model asked longer, costlier questions: its labels moved with them.
  const longer = profileOf(
    "v1-canary",
    400,
    (i) => (i % 2 === 0 ? { label: "NEGATIVE", score: 0.2 } : v1(i)),
    (i) => ({ promptTokens: 200 + (i % 100), cost: 1000 + (i % 300), tier: i % 2 === 0 ? "heavy" : "light" }),
  );
  const drift = compareVersion(longer, baseline, COMPARE);
  t.equal(drift.verdict, "input_drift");
  t.same(drift.input.map((field) => field.field).sort(), ["input.cost", "input.prompt_tokens", "input.tier"]);
  for (const field of drift.input) t.ok(field.drifting.length > 0, `${field.field} drifts`);
});

t.test("a binding's own thresholds decide", async (t) => {
  const baseline = profileOf("v1", 1000, v1);
  const shifted = profileOf("v3", 400, (i) => (i % 10 < 2 ? { label: "NEUTRAL", score: 0.5 } : v1(i)));
  t.equal(compareVersion(shifted, baseline, COMPARE).verdict, "model_drift");
  const lenient = {
    ...DEFAULT_THRESHOLDS,
    psi: 50,
    jsDistance: 1,
    wasserstein: 50,
    modeShareDelta: 1,
    missingDelta: 1,
  };
  const drift = compareVersion(shifted, baseline, { minSamples: 200, thresholds: { ...lenient, varianceRatio: 1e-9 } });
  t.equal(drift.verdict, "stable");
});

t.test("profiles of one version merge and round-trip through JSON", async (t) => {
  const first = profileOf("v1", 300, v1);
  const second = profileOf("v1", 300, (i) => v1(i + 300));
  const restored = VersionProfile.fromJSON(JSON.parse(JSON.stringify(second)), OPTIONS);
  first.merge(restored);
  const whole = profileOf("v1", 600, v1);
  t.equal(first.samples, 600);
  // Equal but for the rounding of the running mean and squared deviations.
  const withoutMoments = (profile: VersionProfile) =>
    JSON.parse(JSON.stringify(profile), (key, value) => (key === "mean" || key === "m2" ? undefined : value));
  t.same(withoutMoments(first), withoutMoments(whole), "merged = observed at once");
  const variance = (profile: VersionProfile) => profile.fields[1]?.sketch?.variance ?? Number.NaN;
  t.ok(Math.abs(variance(first) - variance(whole)) < 1e-12, "the same variance");
});
