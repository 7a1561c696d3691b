import t from "tap";
import { actualCost } from "../../../src/pipeline/actual-cost.js";
import type { Exchange } from "../../../src/pipeline/types.js";

function exchange(values: Pick<Exchange, "cost" | "outputPricing" | "completionTokens">): Exchange {
  const value: Exchange = {
    request: {
      method: "POST",
      path: "/v1/chat/completions",
      authority: "m",
      headers: new Map(),
      requestId: "r",
      endOfStream: false,
    },
    route: { name: "chat" },
    startedAt: 0,
    tenant: "anonymous",
    priority: "standard",
    extendDeadline: () => undefined,
  };
  return Object.assign(value, values);
}

const pricing = { expectedTokens: 200, costPerToken: 4 };

t.test("the estimate with the expected output replaced by the reported one", async (t) => {
  t.equal(actualCost(exchange({ cost: 1_000, outputPricing: pricing, completionTokens: 50 })), 400);
  t.equal(actualCost(exchange({ cost: 1_000, outputPricing: pricing, completionTokens: 300 })), 1_400);
});

t.test("never made up: undefined unless the cost, its output term and a report are all known", async (t) => {
  t.equal(actualCost(exchange({ outputPricing: pricing, completionTokens: 50 })), undefined);
  t.equal(actualCost(exchange({ cost: 1_000, completionTokens: 50 })), undefined);
  t.equal(actualCost(exchange({ cost: 1_000, outputPricing: pricing })), undefined);
  t.equal(
    actualCost(exchange({ cost: 0, outputPricing: { expectedTokens: 0, costPerToken: 0 }, completionTokens: 5 })),
    undefined,
    "a cost of nothing cannot price latency per cost unit",
  );
});
