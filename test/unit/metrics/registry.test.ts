import { register as globalRegistry } from "prom-client";
import t from "tap";
import { BoundedLabel } from "../../../src/metrics/labels.js";
import { createCoreMetrics } from "../../../src/metrics/registry.js";

t.test("core metrics live on a private registry, all named guard_*", async (t) => {
  const metrics = createCoreMetrics("1.2.3");
  const names = (await metrics.registry.getMetricsAsJSON()).map((metric) => metric.name);
  t.ok(names.length > 10);
  t.same(
    names.filter((name) => !name.startsWith("guard_")),
    [],
    "every name starts with guard_",
  );
  for (const name of [
    "guard_extproc_streams_total",
    "guard_extproc_anomalies_total",
    "guard_extproc_message_seconds",
    "guard_stage_errors_total",
    "guard_requests_total",
    "guard_replies_total",
    "guard_build_info",
    "guard_process_resident_memory_bytes",
  ]) {
    t.ok(names.includes(name), name);
  }
  t.same(await globalRegistry.getMetricsAsJSON(), [], "nothing leaks onto prom-client's global registry");
  t.match(await metrics.registry.metrics(), /guard_build_info\{version="1.2.3"\} 1/);
});

t.test("two guards in one process do not collide (hot reload builds a second set)", async (t) => {
  t.doesNotThrow(() => {
    createCoreMetrics("a");
    createCoreMetrics("b");
  });
});

t.test("bounded labels: first N values kept, the rest become other", async (t) => {
  const label = new BoundedLabel(2, 8);
  t.equal(label.value("v1"), "v1");
  t.equal(label.value("v2"), "v2");
  t.equal(label.value("v3"), "other");
  t.equal(label.value("v1"), "v1", "known values stay");
  t.equal(label.value(undefined), "none");
  t.equal(label.value(""), "none");
  t.equal(new BoundedLabel(5, 4).value("abcdefgh"), "abcd", "long values are clipped");
});
