// Features → cost units → tier and upstream timeout. Pure functions of the route's settings.
import type { CostWeights, TierConfig, TimeoutConfig } from "./config.js";
import type { Features } from "./features.js";

export function costOf(features: Features, weights: CostWeights): number {
  return (
    weights.inputToken * features.inputTokens +
    weights.toolToken * features.toolTokens +
    weights.imageToken * features.imageTokens +
    weights.image * features.images +
    weights.outputToken * features.outputTokens +
    (weights.tensorKiB * features.tensorBytes) / 1024 +
    (weights.otherKiB * features.otherBytes) / 1024
  );
}

/** The highest tier whose minCost the cost reaches; tiers are ascending and start at 0 (checked at load). */
export function tierFor(cost: number, tiers: readonly TierConfig[]): string {
  let chosen = tiers[0]?.name ?? "default";
  for (const tier of tiers) {
    if (cost >= tier.minCost) chosen = tier.name;
    else break;
  }
  return chosen;
}

export function timeoutFor(predictedLatencyMs: number, timeout: TimeoutConfig): number {
  const wanted = Math.ceil(predictedLatencyMs * timeout.factor);
  if (!Number.isFinite(wanted)) return timeout.ceilingMs;
  return Math.min(timeout.ceilingMs, Math.max(timeout.floorMs, wanted));
}
