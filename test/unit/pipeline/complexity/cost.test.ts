import t from "tap";
import { complexityRouteSchema } from "../../../../src/pipeline/complexity/config.js";
import { costOf, tierFor, timeoutFor } from "../../../../src/pipeline/complexity/cost.js";
import { emptyFeatures } from "../../../../src/pipeline/complexity/features.js";

const defaults = complexityRouteSchema.parse({});

t.test("cost is the weighted sum of features", async (t) => {
  const features = {
    ...emptyFeatures("chat"),
    inputTokens: 1000,
    toolTokens: 100,
    images: 2,
    imageTokens: 850,
    outputTokens: 500,
    tensorBytes: 2048,
    otherBytes: 1024,
  };
  const weights = { ...defaults.weights, image: 10 };
  t.equal(costOf(features, weights), 1000 + 100 + 850 + 20 + 4 * 500 + 2 + 256);
  t.equal(costOf(emptyFeatures("other"), defaults.weights), 0);
});

t.test("tiers: highest reached threshold wins, boundaries inclusive", async (t) => {
  const tiers = [
    { name: "light", minCost: 0 },
    { name: "medium", minCost: 1000 },
    { name: "heavy", minCost: 8000 },
  ];
  t.equal(tierFor(0, tiers), "light");
  t.equal(tierFor(999.9, tiers), "light");
  t.equal(tierFor(1000, tiers), "medium");
  t.equal(tierFor(7999, tiers), "medium");
  t.equal(tierFor(8000, tiers), "heavy");
  t.equal(tierFor(1e12, tiers), "heavy");
  t.equal(tierFor(5000, defaults.tiers), "light");
  t.equal(tierFor(9000, defaults.tiers), "heavy");
});

t.test("timeout: predicted × factor, clamped", async (t) => {
  const timeout = { header: "x-envoy-upstream-rq-timeout-ms", factor: 3, floorMs: 1000, ceilingMs: 60_000 };
  t.equal(timeoutFor(100, timeout), 1000, "floor for fast requests");
  t.equal(timeoutFor(2000.2, timeout), 6001, "rounded up");
  t.equal(timeoutFor(50_000, timeout), 60_000, "ceiling for huge predictions");
  t.equal(timeoutFor(Number.POSITIVE_INFINITY, timeout), 60_000);
  t.equal(timeoutFor(Number.NaN, timeout), 60_000, "a broken prediction never removes the ceiling");
});
