// The guard's complete metric set without a running server: the core metrics plus every stage of the
// embedded default config (which switches every capability on), on one private registry.
import { pino } from "pino";
import type { Registry } from "prom-client";
import { prepareGuard } from "../../src/config/prepare.js";
import { DEFAULT_GUARD_CONFIG } from "../../src/devstack/stack.js";
import { ComponentLogs } from "../../src/log.js";
import { createCoreMetrics } from "../../src/metrics/registry.js";
import { buildPipeline } from "../../src/pipeline/build.js";
import { registerEnvoyBypass } from "../../src/server/envoy-bypass.js";

export async function guardRegistry(): Promise<Registry> {
  const prepared = await prepareGuard(DEFAULT_GUARD_CONFIG);
  if (!prepared.ok) throw new Error(`default config rejected: ${JSON.stringify(prepared.errors)}`);
  const metrics = createCoreMetrics("0.0.0-test");
  const built = buildPipeline(
    prepared.config,
    { metrics, registry: metrics.registry, logs: new ComponentLogs(pino({ level: "silent" })), now: () => 0 },
    prepared.contracts,
  );
  await built.pipeline.close();
  // The process's own metrics the alert rules read (src/server/serve.ts registers them once).
  registerEnvoyBypass(metrics.registry, () => undefined);
  return metrics.registry;
}

/** Names as queried in PromQL: histograms also as _bucket, _sum and _count. */
export async function guardSeriesNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const metric of await (await guardRegistry()).getMetricsAsJSON()) {
    names.add(metric.name);
    if (String(metric.type) === "histogram" || String(metric.type) === "summary") {
      for (const suffix of ["_bucket", "_sum", "_count"]) names.add(`${metric.name}${suffix}`);
    }
  }
  return names;
}

/** Every guard_* metric name a PromQL expression mentions. */
export function guardNamesIn(expression: string): string[] {
  return [...new Set(expression.match(/\bguard_[a-z0-9_]+/g) ?? [])];
}
