import t from "tap";
import { configSchema } from "../../../../src/config/schema.js";
import { checkComplexityConfig } from "../../../../src/pipeline/complexity/config.js";

function parse(complexity: unknown) {
  return configSchema.parse({ routes: [{ name: "chat", match: {}, complexity }] });
}

t.test("defaults: off, two tiers, Envoy's timeout header", async (t) => {
  const route = configSchema.parse({ routes: [{ name: "chat", match: {} }] }).routes[0];
  t.ok(route);
  const complexity = route!.complexity;
  t.equal(complexity.enabled, false);
  t.same(
    complexity.tiers.map((tier) => tier.name),
    ["light", "heavy"],
  );
  t.equal(complexity.timeout.header, "x-envoy-upstream-rq-timeout-ms");
  t.equal(complexity.tierHeader, "x-guard-tier");
  t.equal(complexity.tokenizer.mode, "fast");
  t.same(checkComplexityConfig(parse({ enabled: true })), []);
});

t.test("unknown keys and bad values are rejected by the schema", async (t) => {
  t.notOk(configSchema.safeParse({ routes: [{ name: "c", match: {}, complexity: { enabeld: true } }] }).success);
  t.notOk(
    configSchema.safeParse({ routes: [{ name: "c", match: {}, complexity: { weights: { inputToken: -1 } } }] }).success,
  );
  t.notOk(
    configSchema.safeParse({ routes: [{ name: "c", match: {}, complexity: { tokenizer: { mode: "slow" } } }] }).success,
  );
});

t.test("cross-checks with paths", async (t) => {
  const issues = checkComplexityConfig(
    parse({
      enabled: true,
      tiers: [
        { name: "light", minCost: 5 },
        { name: "heavy", minCost: 100 },
        { name: "heavy", minCost: 50 },
      ],
      timeout: { floorMs: 5000, ceilingMs: 1000, header: "x-guard-tier" },
    }),
  );
  t.same(
    issues.map((issue) => issue.path),
    [
      "routes[0].complexity.tiers[0].minCost",
      "routes[0].complexity.tiers[2].name",
      "routes[0].complexity.tiers[2].minCost",
      "routes[0].complexity.timeout.floorMs",
      "routes[0].complexity.timeout.header",
    ],
  );
  t.same(
    checkComplexityConfig(parse({ enabled: false, timeout: { floorMs: 5000, ceilingMs: 1000 } })),
    [],
    "disabled routes are not checked",
  );
});
