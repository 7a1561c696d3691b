import { Counter, Gauge, Histogram } from "prom-client";
import t from "tap";
import { metricSum } from "../../../bench/metrics-text.js";
import { ReloadableRegistry } from "../../../src/metrics/reloadable.js";

const counter = (registry: ReloadableRegistry, labelNames = ["route"]) =>
  new Counter({ name: "guard_test_total", help: "test", labelNames, registers: [registry] });

t.test("a metric registered again with its shape takes over the series: no counter reset", async (t) => {
  const registry = new ReloadableRegistry();
  const before = counter(registry);
  before.inc({ route: "chat" }, 3);
  const after = counter(registry);
  registry.carryOver();
  t.equal(metricSum(await registry.metrics(), "guard_test_total", { route: "chat" }), 3, "carried over");
  after.inc({ route: "chat" }, 2);
  // The previous pipeline finishing its last streams still counts, into the same series.
  before.inc({ route: "chat" });
  t.equal(metricSum(await registry.metrics(), "guard_test_total", { route: "chat" }), 6);
  t.equal((await registry.getMetricsAsJSON()).length, 1, "one metric of that name");
});

t.test("histograms carry their buckets; a changed shape, or a gauge, starts afresh", async (t) => {
  const registry = new ReloadableRegistry();
  const histogram = (buckets: number[]) =>
    new Histogram({ name: "guard_test_seconds", help: "test", labelNames: ["route"], buckets, registers: [registry] });
  histogram([0.1, 1]).observe({ route: "chat" }, 0.5);
  const rebuilt = histogram([0.1, 1]);
  registry.carryOver();
  rebuilt.observe({ route: "chat" }, 0.05);
  let text = await registry.metrics();
  t.equal(metricSum(text, "guard_test_seconds_count", { route: "chat" }), 2);
  t.equal(metricSum(text, "guard_test_seconds_bucket", { route: "chat", le: "0.1" }), 1);
  const rebucketed = histogram([0.5, 1]);
  registry.carryOver();
  rebucketed.observe({ route: "chat" }, 0.05);
  text = await registry.metrics();
  t.equal(metricSum(text, "guard_test_seconds_count", { route: "chat" }), 1, "other buckets: a new histogram");

  counter(registry).inc({ route: "chat" }, 5);
  const relabelled = counter(registry, ["route", "reason"]);
  registry.carryOver();
  relabelled.inc({ route: "chat", reason: "x" });
  t.equal(metricSum(await registry.metrics(), "guard_test_total", {}), 1, "other labels: a new counter");

  const gauge = () => new Gauge({ name: "guard_test_state", help: "test", registers: [registry] });
  gauge().set(7);
  const fresh = gauge();
  registry.carryOver();
  t.equal(metricSum(await registry.metrics(), "guard_test_state", {}), 0, "a gauge is the new stage's state");
  fresh.set(3);
  t.equal(metricSum(await registry.metrics(), "guard_test_state", {}), 3);
});

t.test("the series of removed routes go; the others stay", async (t) => {
  const registry = new ReloadableRegistry();
  const requests = counter(registry);
  requests.inc({ route: "chat" }, 2);
  requests.inc({ route: "gone" }, 4);
  const latency = new Histogram({
    name: "guard_test_seconds",
    help: "test",
    labelNames: ["route", "phase"],
    buckets: [1],
    registers: [registry],
  });
  latency.observe({ route: "gone", phase: "request" }, 0.5);
  latency.observe({ route: "chat", phase: "request" }, 0.5);
  const unlabelled = new Counter({ name: "guard_test_unlabelled_total", help: "test", registers: [registry] });
  unlabelled.inc();
  registry.dropRoutesOtherThan(new Set(["chat"]));
  const text = await registry.metrics();
  t.equal(metricSum(text, "guard_test_total", { route: "chat" }), 2);
  t.notMatch(text, /route="gone"/, "no series of the removed route");
  t.equal(metricSum(text, "guard_test_seconds_count", { route: "chat" }), 1);
  t.equal(metricSum(text, "guard_test_unlabelled_total", {}), 1);
});
