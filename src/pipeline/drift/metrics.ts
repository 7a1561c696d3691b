// The drift gauges, computed at scrape time from the monitor's report (never on the request path).
// Label values are bounded: routes by the config, model_version by drift.maxVersions per route,
// field by drift.maxFields plus the three input fields, method by the six of compare.ts.
import { Gauge, type Registry } from "prom-client";
import { registerFleetRedisMetrics, type SharedRedisEvents } from "../shared-redis.js";
import type { RouteDrift, VersionDrift } from "./compare.js";

type Report = () => readonly RouteDrift[];

/**
 * A gauge with labels route, model_version and `labelNames`, rewritten at each scrape: `fill` is
 * called per route and version, and sets series by their other labels.
 */
function versionGauge<Label extends string>(
  registry: Registry,
  report: Report,
  spec: { readonly name: string; readonly help: string; readonly labelNames: readonly Label[] },
  fill: (set: (labels: Record<Label, string>, value: number) => void, version: VersionDrift, route: RouteDrift) => void,
): void {
  new Gauge({
    ...spec,
    labelNames: ["route", "model_version", ...spec.labelNames],
    registers: [registry],
    collect() {
      this.reset();
      for (const route of report()) {
        for (const version of route.versions) {
          const set = (labels: Record<Label, string>, value: number): void =>
            this.set({ route: route.route, model_version: version.version, ...labels }, value);
          fill(set, version, route);
        }
      }
    },
  });
}

export function registerDriftMetrics(registry: Registry, report: Report): void {
  const score = {
    name: "guard_drift_score",
    help: "Drift of a model version's answers (field) or inputs (field input.*) from its route's baseline, by method: psi, js_distance, wasserstein, variance_ratio, mode_share_delta, missing_delta. Only versions with enough samples.",
    labelNames: ["field", "method"] as const,
  };
  versionGauge(registry, report, score, (set, version) => {
    for (const field of [...version.fields, ...version.input])
      for (const [method, value] of Object.entries(field.scores)) set({ field: field.field, method }, value);
  });
  const alert = {
    name: "guard_drift_alert",
    help: "1 while a model version drifts from its route's baseline: kind model (outputs moved, inputs did not) or input (its inputs moved); 0 otherwise, absent without enough samples.",
    labelNames: ["kind"] as const,
  };
  versionGauge(registry, report, alert, (set, version) => {
    if (version.verdict === "insufficient_data" || version.verdict === "baseline") return;
    set({ kind: "model" }, version.verdict === "model_drift" ? 1 : 0);
    set({ kind: "input" }, version.verdict === "input_drift" ? 1 : 0);
  });
  const samples = {
    name: "guard_drift_samples",
    help: "Payloads profiled per route and model version; baseline 1 marks the route's baseline.",
    labelNames: ["baseline"] as const,
  };
  versionGauge(registry, report, samples, (set, version, route) =>
    set({ baseline: version.version === route.baseline ? "1" : "0" }, version.samples),
  );
}

/** The fleet's Redis health: what the shared connection reports (drift.redis). */
export function registerDriftRedisMetrics(registry: Registry): SharedRedisEvents<"publish" | "read"> {
  return registerFleetRedisMetrics(registry, {
    stage: "drift",
    up: "1 while the drift profiles' shared Redis answers, 0 while each sidecar reports its own answers alone",
    errors: "Failed or timed-out calls to the drift profiles' shared Redis, by op (connect, publish, read)",
  });
}
