import t from "tap";
import { configSchema } from "../../../src/config/schema.js";
import { catalogueOf } from "../../../src/contracts/compile.js";
import { crossCheckContracts } from "../../../src/contracts/config.js";
import { demoContracts } from "./fixtures.js";

t.test("an empty config has working contract defaults", async (t) => {
  const config = configSchema.parse({});
  t.same(config.contracts.protoPaths, ["proto/contracts"]);
  t.equal(config.contracts.maxViolations, 20);
  t.equal(config.contracts.header, "x-guard-contract");
});

t.test("contracts.protoc is an error that says contracts no longer need a protoc", async (t) => {
  const parsed = configSchema.safeParse({ contracts: { protoc: "/usr/bin/protoc" } });
  t.notOk(parsed.success);
  if (!parsed.success) {
    t.equal(parsed.error.issues[0]?.path.join("."), "contracts.protoc");
    t.match(parsed.error.issues[0]?.message, /^removed: contracts compile with the buf compiler .*delete this key$/);
  }
});

t.test("a binding gets strict, shadow defaults", async (t) => {
  const config = configSchema.parse({ routes: [{ name: "r", match: {}, contract: { message: "demo.v1.Sentiment" } }] });
  t.same(config.routes[0]?.contract, {
    message: "demo.v1.Sentiment",
    payload: "$",
    action: "shadow",
    stream: "incremental",
    status: 502,
    sampleRate: 1,
    modelVersionHeader: "x-model-version",
    models: [],
    allowUnknownFields: false,
    allowNumberStrings: false,
    allowNonFiniteStrings: false,
    allowNull: false,
    allowEnumNumbers: false,
  });
});

t.test("bad bindings are rejected with their path", async (t) => {
  const cases: [unknown, string][] = [
    [{ message: "demo.v1.Sentiment", payload: "choices[x]" }, "routes.0.contract.payload"],
    [{ message: "not a name" }, "routes.0.contract.message"],
    [{ message: "a.B", action: "block" }, "routes.0.contract.action"],
    [{ message: "a.B", sampleRate: 2 }, "routes.0.contract.sampleRate"],
    [{ message: "a.B", status: 200 }, "routes.0.contract.status"],
  ];
  for (const [contract, path] of cases) {
    const parsed = configSchema.safeParse({ routes: [{ name: "r", match: {}, contract }] });
    t.notOk(parsed.success, JSON.stringify(contract));
    if (!parsed.success) t.equal(parsed.error.issues[0]?.path.join("."), path);
  }
  const unknownKey = configSchema.safeParse({
    routes: [{ name: "r", match: {}, contract: { message: "a.B", acton: "enforce" } }],
  });
  t.notOk(unknownKey.success, "typos are errors");
});

t.test("cross-check: unknown message and unknown wrap field", async (t) => {
  const catalogue = catalogueOf(await demoContracts());
  const config = configSchema.parse({
    routes: [
      { name: "a", match: {}, contract: { message: "demo.v1.Sentiment" } },
      { name: "b", match: {}, contract: { message: "demo.v1.Sentimnet" } },
      { name: "c", match: {}, contract: { message: "demo.v1.Embedding", wrapField: "vector" } },
      { name: "d", match: {} },
    ],
  });
  t.same(crossCheckContracts(config, catalogue), [
    { path: "routes[1].contract.message", message: 'unknown contract message "demo.v1.Sentimnet"' },
    { path: "routes[2].contract.wrapField", message: '"demo.v1.Embedding" has no field "vector" (fields: values)' },
  ]);
});
