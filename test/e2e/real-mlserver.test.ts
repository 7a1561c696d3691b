// MLServer (Seldon's Open Inference Protocol / KServe V2 server) with a scikit-learn classifier,
// behind Envoy and the guard: its predict / predict_proba outputs checked by a V2 contract
// (proto/real-servers/v2_classifier.proto), a rollout of a model version trained on another label set
// caught as a contract break (and a rollback cleared), and its own errors — a JSON 404, a bare-text
// 500 — passed through unchanged, counted against the right admission domain, never as violations.
import { spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import t, { type Test } from "tap";
import { metricSum } from "../../bench/metrics-text.js";
import { PROJECT_ROOT } from "../../src/devstack/envoy.js";
import type { RealModels, RealServer } from "../../src/devstack/real-servers.js";
import type { Stack } from "../../src/devstack/stack.js";
import { seededRandom } from "../../src/util/seeded-random.js";
import { post } from "../helpers/e2e.js";
import { mlserverFor, realModelsFor, stackInFrontOf } from "../helpers/real-servers.js";
import { guardMetrics } from "../helpers/sse-client.js";

const CONTRACT = "models.v1.InferenceResponse";
const INFER = "/v2/models/classifier/infer";

function infer(rows: number, seed: number): Record<string, unknown> {
  const random = seededRandom(seed);
  return {
    inputs: [
      {
        name: "features",
        shape: [rows, 4],
        datatype: "FP32",
        data: Array.from({ length: rows * 4 }, () => Math.round((random() * 6 - 3) * 1000) / 1000),
      },
    ],
    outputs: [{ name: "predict_proba" }, { name: "predict" }],
  };
}

function guardConfig(): Record<string, unknown> {
  const contract = (action: string) => ({ message: CONTRACT, action, modelVersionField: "model_version" });
  return {
    log: { level: "warn" },
    contracts: { protoPaths: ["proto/real-servers"] },
    admission: {
      limit: { initial: 8 },
      // Small enough for a handful of requests to open it: failures are what these tests send.
      circuit: { windowMs: 10_000, buckets: 5, minRequests: 4, failureRatio: 0.5, openMs: 30_000, halfOpenProbes: 1 },
    },
    routes: [
      {
        name: "shadow",
        match: { pathPrefix: "/v2/models/classifier/", headers: { "x-contract": "shadow" } },
        contract: contract("shadow"),
        admission: { enabled: true },
      },
      {
        name: "classifier",
        match: { pathPrefix: "/v2/models/classifier/" },
        contract: contract("enforce"),
        admission: { enabled: true },
      },
      { name: "models", match: { pathPrefix: "/v2/models/" }, admission: { enabled: true } },
    ],
  };
}

/** Serves `version` of the classifier: its model-settings.json rewritten, then MLServer reloads it. */
async function rollout(t: Test, server: RealServer, models: RealModels, version: "v1" | "v2"): Promise<void> {
  const settings = {
    name: "classifier",
    implementation: "mlserver_sklearn.SKLearnModel",
    parameters: { uri: `./model-${version}.joblib`, version },
  };
  await writeFile(join(models.mlserverRepository, "classifier", "model-settings.json"), JSON.stringify(settings));
  const loaded = await fetch(`${server.url}/v2/repository/models/classifier/load`, { method: "POST" });
  t.equal(loaded.status, 200, `MLServer loaded ${version}`);
}

interface V2Answer {
  model_version: string;
  outputs: { name: string; shape: number[]; data: number[] }[];
}

t.test("MLServer behind Envoy and the guard", async (t) => {
  const models = await realModelsFor(t);
  const mlserver = await mlserverFor(t, models);
  const stack = await stackInFrontOf(t, mlserver, { guardConfig: guardConfig() });

  t.test("contract: predict_proba rows are probabilities, predict is in the class set", (t) =>
    conformingChecks(t, mlserver, stack),
  );
  t.test("a model version trained on another label set is caught; the rollback clears", (t) =>
    versionChecks(t, mlserver, models, stack),
  );
  t.test("a probability row that does not sum to 1 breaks the contract (recorded answer, offline check)", (t) =>
    offlineChecks(t, mlserver),
  );
  t.test("the server's 404 and bare 500 pass unchanged: upstream failures, never violations", (t) =>
    errorChecks(t, mlserver, stack),
  );
});

async function conformingChecks(t: Test, mlserver: RealServer, stack: Stack): Promise<void> {
  for (const [rows, seed] of [
    [1, 1],
    [8, 2],
    [64, 3],
  ] as const) {
    const direct = await post(`${mlserver.url}${INFER}`, infer(rows, seed));
    const answer = await post(`${stack.url}${INFER}`, infer(rows, seed));
    t.equal(answer.status, 200, `${rows} rows: enforced, passed`);
    t.equal(answer.headers.get("x-guard-contract"), "passed");
    const body = JSON.parse(answer.text) as V2Answer;
    const expected = JSON.parse(direct.text) as V2Answer;
    t.same(body.outputs, expected.outputs, "the outputs unchanged");
    const proba = body.outputs.find((output) => output.name === "predict_proba");
    t.same(proba?.shape, [rows, 3]);
  }
  const metrics = await guardMetrics(stack);
  t.equal(
    metricSum(metrics, "guard_contract_checks_total", { contract: CONTRACT, model_version: "v1", result: "passed" }),
    3,
  );
}

async function versionChecks(t: Test, mlserver: RealServer, models: RealModels, stack: Stack): Promise<void> {
  await rollout(t, mlserver, models, "v2");
  const direct = JSON.parse((await post(`${mlserver.url}${INFER}`, infer(4, 9))).text) as V2Answer;
  t.equal(direct.model_version, "v2");
  t.same(direct.outputs.find((output) => output.name === "predict_proba")?.shape, [4, 4], "v2 has four classes");

  const enforced = await post(`${stack.url}${INFER}`, infer(4, 9));
  t.equal(enforced.status, 502, "enforce: v2's answer is withheld");
  t.equal(enforced.headers.get("x-guard-reason"), "contract.violated");
  t.match(enforced.headers.get("content-type"), /application\/problem\+json/, "a problem document on a V2 path");
  const problem = JSON.parse(enforced.text) as { model_version: string; violations: { field: string; rule: string }[] };
  t.equal(problem.model_version, "v2", "the break is attributed to the new version");
  const rules = new Set(problem.violations.map((violation) => violation.rule));
  t.ok(rules.has("predict_proba.shape"), `four probability columns (${[...rules].join(", ")})`);

  const shadowed = await post(`${stack.url}${INFER}`, infer(4, 9), { "x-contract": "shadow" });
  t.equal(shadowed.status, 200, "shadow: the answer passes");
  t.match(shadowed.headers.get("x-guard-contract"), /^violated; rules=.*predict_proba\.shape/);
  // Most inputs land in the new class 3: across a batch of 32, some must.
  const batch = await post(`${stack.url}${INFER}`, infer(32, 10), { "x-contract": "shadow" });
  const predicted = (JSON.parse(batch.text) as V2Answer).outputs.find((output) => output.name === "predict")?.data;
  t.ok(predicted?.includes(3), "v2 predicts class 3");
  t.match(batch.headers.get("x-guard-contract"), /predict\.class_set/, "a class outside the set is a break");

  const metrics = await guardMetrics(stack);
  t.equal(
    metricSum(metrics, "guard_contract_checks_total", { contract: CONTRACT, model_version: "v2", result: "violated" }),
    3,
    "every v2 answer counted as violated, under v2",
  );
  t.ok(
    metricSum(metrics, "guard_contract_violations_total", {
      contract: CONTRACT,
      model_version: "v2",
      rule: "predict.class_set",
    }) >= 1,
  );

  await rollout(t, mlserver, models, "v1");
  const back = await post(`${stack.url}${INFER}`, infer(4, 9));
  t.equal(back.status, 200, "after the rollback: passes again");
  t.equal(back.headers.get("x-guard-contract"), "passed");
}

async function offlineChecks(t: Test, mlserver: RealServer): Promise<void> {
  const recorded = JSON.parse((await post(`${mlserver.url}${INFER}`, infer(3, 4))).text) as V2Answer;
  const tampered = structuredClone(recorded);
  const proba = tampered.outputs.find((output) => output.name === "predict_proba");
  if (proba === undefined) throw new Error("no predict_proba");
  // Row 1 no longer sums to 1, every value still in [0, 1].
  proba.data[3] = Math.min(1, (proba.data[3] ?? 0) + 0.2);
  const file = join(
    t.testdir({ "recorded.jsonl": `${JSON.stringify(recorded)}\n${JSON.stringify(tampered)}\n` }),
    "recorded.jsonl",
  );
  const checked = spawnSync(
    process.execPath,
    [
      join(PROJECT_ROOT, "bin", "inference-guard.js"),
      "check",
      "--proto",
      "proto/real-servers",
      "--message",
      CONTRACT,
      file,
    ],
    { cwd: PROJECT_ROOT, encoding: "utf8" },
  );
  const lines = checked.stdout
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { verdict: string; violations: { rule: string; field: string }[] });
  t.equal(lines[0]?.verdict, "passed", "the answer as MLServer gave it conforms");
  t.equal(lines[1]?.verdict, "violated");
  t.same(
    lines[1]?.violations.map((violation) => `${violation.field} ${violation.rule}`),
    ["outputs[0] predict_proba.distribution"],
  );
  t.equal(checked.status, 1, "check exits 1: a line broke the contract");
}

async function errorChecks(t: Test, mlserver: RealServer, stack: Stack): Promise<void> {
  const before = await guardMetrics(stack);
  const unknown = infer(1, 5);
  const notFoundDirect = await post(`${mlserver.url}/v2/models/nope/infer`, unknown);
  t.equal(notFoundDirect.status, 404);
  for (let index = 0; index < 6; index++) {
    const notFound = await post(`${stack.url}/v2/models/nope/infer`, unknown);
    t.equal(notFound.status, 404, "an unknown model: the server's 404");
    t.equal(notFound.text, notFoundDirect.text, "its JSON unchanged");
    t.equal(notFound.headers.get("x-guard-reason"), null);
  }
  // Three features where the model wants four: scikit-learn raises, MLServer answers a plain-text 500.
  const wrongShape = { inputs: [{ name: "features", shape: [1, 3], datatype: "FP32", data: [0.1, 0.2, 0.3] }] };
  const failedDirect = await post(`${mlserver.url}${INFER}`, wrongShape);
  t.equal(failedDirect.status, 500);
  t.match(failedDirect.headers.get("content-type"), /text\/plain/);
  // MLServer resets the keep-alive connection right after such a 500 (without Connection: close):
  // a request Envoy sends on it before seeing the reset gets Envoy's own 503 (Envoy's routes here have
  // no retry policy). Both are upstream failures; neither is model output.
  const answers = { unchanged: 0, reset: 0 };
  for (let attempt = 0; attempt < 10; attempt++) {
    const failed = await post(`${stack.url}${INFER}`, wrongShape);
    if (failed.headers.get("x-guard-reason") === "shed.circuit_open") break;
    t.equal(failed.headers.get("x-guard-contract"), null, "not model output: not checked");
    if (failed.status === 500) {
      t.equal(failed.text, failedDirect.text, "the server's 500 and its text unchanged");
      answers.unchanged++;
    } else {
      t.equal(failed.status, 503, "or Envoy's 503 for the connection MLServer reset");
      t.match(failed.text, /reset before headers\. reset reason: connection termination/);
      answers.reset++;
    }
  }
  t.comment(`wrong-shape requests before the circuit opened: ${JSON.stringify(answers)}`);
  t.ok(answers.unchanged >= 1, "the server's 500 reached the client unchanged");
  const metrics = await guardMetrics(stack);
  t.equal(
    metricSum(metrics, "guard_contract_violations_total") - metricSum(before, "guard_contract_violations_total"),
    0,
    "no error counted as a contract violation",
  );
  t.equal(
    metricSum(metrics, "guard_circuit_state", { pool: "classifier" }),
    2,
    "the 500s opened the classifier's circuit",
  );
  t.equal(metricSum(metrics, "guard_circuit_state", { pool: "models" }), 0, "404s are not upstream failures");
  const shed = await post(`${stack.url}${INFER}`, infer(1, 6));
  t.equal(shed.status, 503, "the classifier's domain fails fast while open");
  t.equal(shed.headers.get("x-guard-reason"), "shed.circuit_open");
  const shadow = await post(`${stack.url}${INFER}`, infer(1, 6), { "x-contract": "shadow" });
  t.equal(shadow.status, 200, "another domain on the same server is untouched");
}
