import { pino } from "pino";
import { Registry } from "prom-client";
import t from "tap";
import { configSchema } from "../../../../src/config/schema.js";
import { profiledFields } from "../../../../src/contracts/fields.js";
import { stageConfigs } from "../../../../src/pipeline/build.js";
import { createContractsStage } from "../../../../src/pipeline/contracts/stage.js";
import { createDriftMonitor, DriftHistory } from "../../../../src/pipeline/drift/monitor.js";
import { chatExchange } from "../../../helpers/exchange.js";
import { demoContracts } from "../../contracts/fixtures.js";

t.test("fields and their kinds come from the contract's schema", async (t) => {
  const { messages } = await demoContracts();
  const triage = messages.get("demo.v1.TicketTriage");
  const eta = messages.get("demo.v1.DeliveryEta");
  if (triage === undefined || eta === undefined) throw new Error("demo contracts missing");
  t.same(
    profiledFields(triage, 24).map(({ path, kind }) => [path, kind]),
    [
      ["category", "categorical"],
      ["priority", "numeric"],
      ["tags", "size"],
      ["summary", "length"],
      ["needs_human", "categorical"],
    ],
    "string.in is categorical, a number numeric, a list its size, a free string its length, a bool categorical",
  );
  t.same(
    profiledFields(eta, 24).map(({ path, kind }) => [path, kind]),
    [
      ["order_id", "length"],
      ["eta_minutes", "numeric"],
      ["status", "categorical"],
      ["delay_reason", "length"],
      ["computed_at", "presence"],
    ],
    "an enum is categorical, a Timestamp its presence",
  );
  t.equal(profiledFields(triage, 2).length, 2, "maxFields caps the fields");
  t.same(profiledFields(triage, 24)[4]?.keys, [["needs_human", "needsHuman"]], "proto and JSON names are read");
});

async function sentimentSetup(
  routeDrift: Record<string, unknown> = {},
  reload?: { readonly history: DriftHistory; readonly routeName?: string; readonly payload?: string },
) {
  const config = configSchema.parse({
    drift: { minSamples: 50 },
    routes: [
      {
        name: reload?.routeName ?? "sentiment",
        match: { pathPrefix: "/" },
        complexity: { enabled: true },
        contract: { message: "demo.v1.Sentiment", action: "shadow", payload: reload?.payload ?? "$" },
        drift: routeDrift,
      },
    ],
  });
  const registry = new Registry();
  let clock = 0;
  const deps = { registry, log: pino({ level: "silent" }), now: () => clock };
  const drift = createDriftMonitor(stageConfigs(config).drift, {
    ...deps,
    ...(reload === undefined ? {} : { history: reload.history }),
  });
  const stage = createContractsStage(stageConfigs(config).contracts, deps, await demoContracts(), {
    observe: drift.observe,
  });
  const answer = async (version: string, body: unknown, promptTokens = 12): Promise<void> => {
    clock += 10;
    const exchange = chatExchange({
      route: { name: reload?.routeName ?? "sentiment" },
      startedAt: clock,
      promptTokens,
      cost: promptTokens * 2,
      tier: "light",
    });
    const run = stage.start(exchange);
    await run?.onRequestHeaders?.();
    await run?.onResponseHeaders?.({
      status: 200,
      headers: new Map([
        ["content-type", "application/json"],
        ["x-model-version", version],
      ]),
      endOfStream: false,
    });
    await run?.onResponseBody?.(new TextEncoder().encode(JSON.stringify(body)));
  };
  return { drift, registry, answer, advance: (ms: number) => (clock += ms) };
}

const conforming = (i: number) => ({ label: "POSITIVE", score: 0.55 + (i % 45) / 100 });

t.test("answers judged by the contracts stage are profiled per version and scored on /metrics", async (t) => {
  const { drift, registry, answer, advance } = await sentimentSetup();
  for (let i = 0; i < 120; i++) await answer("v1", conforming(i));
  for (let i = 0; i < 60; i++) await answer("v2", { label: "POSITIVE", score: 0.98 });
  // Violating answers are profiled too: a version whose answers break the contract has drifted as well.
  await answer("v2", { label: "POSITIVE", score: 0.98, reason: "an unknown field" });
  t.equal(drift.profile("sentiment", "v1")?.samples, 120);
  t.equal(drift.profile("sentiment", "v2")?.samples, 61);
  advance(2_000);
  const [route] = drift.report();
  t.equal(route?.baseline, "v1", "the busiest version is the baseline");
  t.equal(route?.pinned, false);
  const v2 = route?.versions.find((version) => version.version === "v2");
  t.equal(v2?.verdict, "model_drift");
  t.equal(v2?.fields[0]?.field, "score", "the collapsed field comes first");
  t.equal(v2?.input.length, 3, "the input profile is compared too");
  const metrics = await registry.metrics();
  t.match(metrics, /guard_drift_score\{route="sentiment",model_version="v2",field="score",method="variance_ratio"\} 0/);
  t.match(metrics, /guard_drift_alert\{route="sentiment",model_version="v2",kind="model"\} 1/);
  t.match(metrics, /guard_drift_alert\{route="sentiment",model_version="v2",kind="input"\} 0/);
  t.match(metrics, /guard_drift_samples\{route="sentiment",model_version="v1",baseline="1"\} 120/);
  t.notMatch(metrics, /model_version="v1",field=/, "the baseline has no scores of its own");
});

t.test("a pinned baseline wins over traffic; versions past maxVersions are dropped, not profiled", async (t) => {
  const { drift, answer, advance } = await sentimentSetup({ baselineVersion: "v0" });
  for (let i = 0; i < 60; i++) await answer("v0", conforming(i));
  for (let i = 0; i < 100; i++) await answer("v1", conforming(i + 3));
  for (let v = 2; v < 10; v++) await answer(`v${v}`, conforming(v));
  advance(2_000);
  const [route] = drift.report();
  t.equal(route?.baseline, "v0");
  t.equal(route?.pinned, true);
  t.equal(route?.versions.find((version) => version.version === "v1")?.verdict, "stable");
  t.equal(route?.versions.length, 8, "drift.maxVersions (8) versions");
  t.equal(route?.droppedAnswers, 2);
});

t.test("the same model asked other questions reports input drift", async (t) => {
  const { drift, answer, advance } = await sentimentSetup();
  for (let i = 0; i < 120; i++) await answer("v1", conforming(i), 10 + (i % 5));
  for (let i = 0; i < 60; i++) await answer("v1-canary", conforming(i + 1), 400 + (i % 50));
  advance(2_000);
  const canary = drift.report()[0]?.versions.find((version) => version.version === "v1-canary");
  t.equal(canary?.verdict, "input_drift");
  t.equal(canary?.input[0]?.field === "input.tier", false, "tokens and cost moved, the tier did not");
  t.same(
    canary?.fields.flatMap((field) => field.drifting),
    [],
    "its outputs did not move",
  );
});

t.test("a reload keeps the profiles while the route profiles the same fields", async (t) => {
  const history = new DriftHistory();
  const before = await sentimentSetup({}, { history });
  for (let i = 0; i < 120; i++) await before.answer("v1", conforming(i));
  for (let i = 0; i < 60; i++) await before.answer("v2", { label: "POSITIVE", score: 0.98 });

  // A reload compiles the contracts anew and builds a new monitor on the same history.
  const after = await sentimentSetup({}, { history });
  t.equal(after.drift.profile("sentiment", "v1")?.samples, 120, "reported before any new answer");
  const [route] = after.drift.report();
  t.equal(route?.versions.find((version) => version.version === "v2")?.verdict, "model_drift", "the alert stays");
  await after.answer("v1", conforming(1));
  t.equal(after.drift.profile("sentiment", "v1")?.samples, 121, "new answers add to the kept profile");

  const repointed = await sentimentSetup({}, { history, payload: "result" });
  await repointed.answer("v1", { result: conforming(2) });
  t.equal(repointed.drift.profile("sentiment", "v1")?.samples, 1, "another payload path starts afresh");
  t.equal(repointed.drift.profile("sentiment", "v2"), undefined);

  const renamed = await sentimentSetup({}, { history, routeName: "sentiment-v2" });
  t.same(renamed.drift.report(), [], "a route the config no longer has is forgotten");
  t.equal(history.routes.size, 0);
});
