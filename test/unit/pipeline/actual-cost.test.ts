import t from "tap";
import { actualCost } from "../../../src/pipeline/actual-cost.js";
import { chatExchange } from "../../helpers/exchange.js";

const pricing = { expectedTokens: 200, costPerToken: 4 };

t.test("the estimate with the expected output replaced by the reported one", async (t) => {
  t.equal(actualCost(chatExchange({ cost: 1_000, outputPricing: pricing, completionTokens: 50 })), 400);
  t.equal(actualCost(chatExchange({ cost: 1_000, outputPricing: pricing, completionTokens: 300 })), 1_400);
});

t.test("never made up: undefined unless the cost, its output term and a report are all known", async (t) => {
  t.equal(actualCost(chatExchange({ outputPricing: pricing, completionTokens: 50 })), undefined);
  t.equal(actualCost(chatExchange({ cost: 1_000, completionTokens: 50 })), undefined);
  t.equal(actualCost(chatExchange({ cost: 1_000, outputPricing: pricing })), undefined);
  t.equal(
    actualCost(chatExchange({ cost: 0, outputPricing: { expectedTokens: 0, costPerToken: 0 }, completionTokens: 5 })),
    undefined,
    "a cost of nothing cannot price latency per cost unit",
  );
});
