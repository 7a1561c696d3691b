import t from "tap";
import { parseConfig } from "../../../../src/config/load.js";
import { configSchema } from "../../../../src/config/schema.js";
import { complexityRouteSchema } from "../../../../src/pipeline/complexity/config.js";

/** Paths of the schema's issues, dotted as config paths are. */
function issuePaths(complexity: unknown): string[] {
  const parsed = complexityRouteSchema.safeParse(complexity);
  return parsed.success ? [] : parsed.error.issues.map((issue) => issue.path.join("."));
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
  t.same(issuePaths({ enabled: true }), []);
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

t.test("checks between keys, with paths", async (t) => {
  t.same(
    issuePaths({
      enabled: true,
      tiers: [
        { name: "light", minCost: 5 },
        { name: "heavy", minCost: 100 },
        { name: "heavy", minCost: 50 },
      ],
      timeout: { floorMs: 5000, ceilingMs: 1000, header: "x-guard-tier" },
    }),
    ["tiers.0.minCost", "tiers.2.name", "tiers.2.minCost", "timeout.floorMs", "timeout.header"],
  );
  t.same(
    issuePaths({ enabled: false, timeout: { floorMs: 5000, ceilingMs: 1000 } }),
    [],
    "disabled routes are not checked",
  );
});

t.test("output: learned by default after 30 reported answers, remembering 200; bad values named by path", async (t) => {
  t.same(complexityRouteSchema.parse({}).output, { learn: true, minSamples: 30, memory: 200 });
  t.same(issuePaths({ enabled: true, output: { minSamples: 0, memory: 1.5, lern: false } }).sort(), [
    "output",
    "output.memory",
    "output.minSamples",
  ]);
});

t.test("contextWindow: a whole number of tokens, reported with its path", async (t) => {
  t.same(issuePaths({ enabled: true, contextWindow: 512 }), []);
  for (const bad of ["0", "2.5", '"512"']) {
    const result = parseConfig(
      `routes:\n  - { name: ok, match: { pathPrefix: /a } }\n  - { name: llama, match: { pathPrefix: /v1 }, complexity: { enabled: true, contextWindow: ${bad} } }\n`,
    );
    t.same(result.ok ? [] : result.errors.map((issue) => issue.path), ["routes[1].complexity.contextWindow"], bad);
  }
});
