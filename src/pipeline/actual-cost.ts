// The real cost of an answered request: its estimated cost with the expected output replaced by
// the completion tokens the upstream reported. Undefined unless both are known: a cost is never
// made up from an estimate of the output.
import type { Exchange } from "./types.js";

export function actualCost(exchange: Exchange): number | undefined {
  const { cost, outputPricing, completionTokens } = exchange;
  if (cost === undefined || outputPricing === undefined || completionTokens === undefined) return undefined;
  const actual = cost + (completionTokens - outputPricing.expectedTokens) * outputPricing.costPerToken;
  return Number.isFinite(actual) && actual > 0 ? actual : undefined;
}
