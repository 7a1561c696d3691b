// Output drift through a real Envoy 1.40: the demo model's in-range drift variants and its
// input-shift traffic on the sentiment route (docs/drift.md). Every answer conforms to the
// contract, so the contract passes them all; the drift monitor flags the collapse on the right
// field as model drift, reports the shifted inputs as input drift (not model drift), and gives a
// version with a small sample no verdict; the status page (headless Chromium) shows it. Then the shipped
// drift alert rules through promtool.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import t from "tap";
import { parse } from "yaml";
import { metricSum } from "../../bench/metrics-text.js";
import { sentimentRequest, type TrafficMode } from "../../src/demo/traffic.js";
import type { Stack } from "../../src/devstack/stack.js";
import type { StatusReport } from "../../src/server/status/report.js";
import { defaultConfigWith, mapConcurrently, post, stackFor } from "../helpers/e2e.js";
import { guardNamesIn, guardSeriesNames } from "../helpers/guard-metrics.js";
import { startRedis } from "../helpers/redis.js";
import { ensureCommand, run } from "../helpers/system.js";

const MIN_SAMPLES = 100;

/** The sentiment route with the input profile on, its contract enforced and v1 its pinned baseline. */
async function sentimentConfig(drift: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  return defaultConfigWith({
    drift: { minSamples: MIN_SAMPLES, ...drift },
    routes: [
      {
        name: "sentiment",
        match: { pathPrefix: "/v1/predict/sentiment", methods: ["POST"] },
        // The input profile (prompt tokens, cost, tier) comes from the complexity estimate.
        complexity: { enabled: true },
        contract: { message: "demo.v1.Sentiment", action: "enforce" },
        drift: { baselineVersion: "v1" },
      },
    ],
  });
}

/** `count` sentiment requests through `stack`'s Envoy to `version` answering as `variant`; their statuses. */
async function send(stack: Stack, count: number, version: string, variant: string, mode: TrafficMode) {
  return mapConcurrently(
    Array.from({ length: count }, (_, i) => i),
    8,
    async (i) =>
      (
        await post(`${stack.url}/v1/predict/sentiment`, sentimentRequest(i, mode), {
          "x-demo-version": version,
          "x-demo-variant": variant,
        })
      ).status,
  );
}

async function statusOf(stack: Stack): Promise<StatusReport> {
  return (await (await fetch(`${stack.guard?.adminUrl}/api/status`)).json()) as StatusReport;
}

t.test("collapse is model drift on the score; shifted inputs are input drift", async (t) => {
  const stack = await stackFor(t, { guardConfig: await sentimentConfig() });
  const adminUrl = stack.guard?.adminUrl ?? "";
  for (const [count, version, variant, mode] of [
    [300, "v1", "v1", "steady"],
    [150, "v2", "score_collapsed", "steady"],
    [150, "v3", "v1", "input_shift"],
    [20, "v4", "label_shift", "steady"],
  ] as const) {
    const statuses = await send(stack, count, version, variant, mode);
    t.same(new Set(statuses), new Set([200]), `${version}: every answer passed the enforced contract`);
  }

  const status = await statusOf(stack);
  const route = status.drift.find((entry) => entry.route === "sentiment");
  t.match(route, { contract: "demo.v1.Sentiment", baseline: "v1", pinned: true });
  const version = (name: string) => route?.versions.find((entry) => entry.modelVersion === name);
  t.equal(version("v1")?.verdict, "baseline");
  t.equal(version("v1")?.samples, 300);

  const collapsed = version("v2");
  t.equal(collapsed?.verdict, "model_drift", JSON.stringify(collapsed));
  t.equal(collapsed?.topFields[0]?.field, "score", "the collapsed field is the top drifting one");
  t.ok(collapsed?.topFields[0]?.drifting.includes("mode_share_delta"), "flagged as a collapse (share at the mode)");
  t.notOk(
    collapsed?.topFields.some((field) => field.field === "label"),
    "the label, which did not move, is not listed",
  );
  t.same(collapsed?.inputDrift, [], "its inputs did not move");

  const shifted = version("v3");
  t.equal(shifted?.verdict, "input_drift", JSON.stringify(shifted));
  // The estimate reads no tokens from a body of this shape ({"text": …}): its cost carries the size.
  t.ok(
    shifted?.inputDrift.some((field) => field.field === "input.cost"),
    "the requests' estimated cost moved",
  );
  t.ok(
    shifted?.topFields.some((field) => field.field === "label"),
    "its labels moved with the inputs, and are reported beside them",
  );

  t.equal(version("v4")?.verdict, "insufficient_data", "20 answers are too few for a verdict");
  t.same(version("v4")?.topFields, []);

  const metrics = (await stack.guard?.metrics()) ?? "";
  const alert = (modelVersion: string, kind: string) =>
    metricSum(metrics, "guard_drift_alert", { route: "sentiment", model_version: modelVersion, kind });
  t.equal(alert("v2", "model"), 1);
  t.equal(alert("v2", "input"), 0);
  t.equal(alert("v3", "input"), 1);
  t.equal(alert("v3", "model"), 0, "an input shift is not model drift");
  t.notMatch(metrics, /guard_drift_alert\{[^}]*model_version="v4"/, "no alert series without enough samples");
  t.ok(
    metricSum(metrics, "guard_drift_score", {
      route: "sentiment",
      model_version: "v2",
      field: "score",
      method: "psi",
    }) > 0.2,
    "guard_drift_score carries the collapse's PSI",
  );
  t.equal(
    metricSum(metrics, "guard_contract_checks_total", { model_version: "v2", result: "violated" }),
    0,
    "the contract saw nothing wrong with v2",
  );

  t.test("the status page shows each version's verdict and drifting fields", async (t) => {
    const browser = ensureCommand("browser", ["chromium-headless-shell", "chromium"]);
    const profile = await mkdtemp(join(tmpdir(), "guard-drift-chromium-"));
    t.teardown(() => rm(profile, { recursive: true, force: true }));
    const dump = run(browser, [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      `--user-data-dir=${profile}`,
      // Lets the page's first live update (GET /status/live) land before the dump.
      "--virtual-time-budget=5000",
      "--dump-dom",
      `${adminUrl}/`,
    ]);
    t.equal(dump.status, 0, dump.output.slice(-2000));
    const row = (version: string): string =>
      new RegExp(`<tr data-route="sentiment" data-model-version="${version}"[\\s\\S]*?</tr>`).exec(dump.stdout)?.[0] ??
      "";
    t.match(row("v1"), /baseline v1 \(pinned\)/, "the route's baseline");
    t.match(row("v2"), /data-verdict="model_drift"/);
    t.match(row("v2"), /<li data-field="score">/, "the collapsed field");
    t.match(row("v3"), /class="verdict input_drift">input drift</);
    t.match(row("v3"), /<li data-field="input\.cost">/, "its input drift, beside its outputs");
    t.match(row("v4"), /insufficient data/);
  });
});

t.test("two sidecars sharing Redis both see the fleet's profiles", async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const config = await sentimentConfig({ redis: { url: redis.url, syncIntervalMs: 200 } });
  const [first, second] = await Promise.all([
    stackFor(t, { guardConfig: config }),
    stackFor(t, { guardConfig: config }),
  ]);
  // The baseline's answers reach the first sidecar only, the collapsed version's the second only.
  t.same(new Set(await send(first, 150, "v1", "v1", "steady")), new Set([200]));
  t.same(new Set(await send(second, 150, "v2", "score_collapsed", "steady")), new Set([200]));
  // A sync is due on the next answer after syncIntervalMs: one more answer each, until both report
  // the other's versions (each sync publishes this sidecar's profiles and reads the other's).
  const v2Of = async (stack: Stack) =>
    (await statusOf(stack)).drift
      .find((entry) => entry.route === "sentiment")
      ?.versions.find((version) => version.modelVersion === "v2");
  const deadline = performance.now() + 10_000;
  let seen: Awaited<ReturnType<typeof v2Of>>[] = [];
  while (performance.now() < deadline) {
    await sleep(250);
    await send(first, 1, "v1", "v1", "steady");
    await send(second, 1, "v2", "score_collapsed", "steady");
    seen = [await v2Of(first), await v2Of(second)];
    // A sync may have published part of the burst: wait for all of it.
    if (seen.every((v2) => v2?.verdict === "model_drift" && v2.samples >= 150)) break;
  }
  for (const [index, name] of ["first", "second"].entries()) {
    const v2 = seen[index];
    t.ok((v2?.samples ?? 0) >= 150, `${name} sees the second sidecar's v2 answers: ${v2?.samples}`);
    t.equal(v2?.verdict, "model_drift", `${name}: v2 drifts from the first sidecar's v1`);
    t.equal(v2?.topFields[0]?.field, "score");
  }
});

t.test("the drift alert rules are valid, unit-tested, and name metrics the guard exports", async (t) => {
  const promtool = ensureCommand("promtool", ["promtool"]);
  const check = run(promtool, ["check", "rules", "ops/prometheus/drift-alerts.yaml"]);
  t.equal(check.status, 0, check.output);
  t.match(check.output, /SUCCESS: 2 rules found/);
  const tests = run(promtool, ["test", "rules", "ops/prometheus/drift-alerts.test.yaml"]);
  t.equal(tests.status, 0, tests.output);
  const rules = parse(await readFile("ops/prometheus/drift-alerts.yaml", "utf8")) as {
    groups: { rules: { alert: string; expr: string }[] }[];
  };
  const tested = await readFile("ops/prometheus/drift-alerts.test.yaml", "utf8");
  const names = await guardSeriesNames();
  for (const rule of rules.groups.flatMap((group) => group.rules)) {
    for (const name of guardNamesIn(rule.expr)) t.ok(names.has(name), `${rule.alert}: ${name} is a guard metric`);
    t.match(tested, new RegExp(`alertname: ${rule.alert}\\b`), `${rule.alert} is unit-tested`);
  }
});
