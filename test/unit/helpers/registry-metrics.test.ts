import { Counter, Histogram, Registry } from "prom-client";
import t from "tap";
import { registrySamples, registrySum, registryValue } from "../../helpers/registry-metrics.js";

function registry(): Registry {
  const registry = new Registry();
  const shed = new Counter({ name: "shed_total", help: "h", labelNames: ["reason"], registers: [registry] });
  shed.inc({ reason: "overload" }, 2);
  shed.inc({ reason: "queue_full" });
  new Counter({ name: "never_total", help: "h", labelNames: ["reason"], registers: [registry] });
  new Histogram({ name: "wait_seconds", help: "h", buckets: [1], registers: [registry] }).observe(0.5);
  return registry;
}

t.test("reads counters, histogram series and matching labels", async (t) => {
  t.equal(await registrySum(registry(), "shed_total"), 3);
  t.equal(await registryValue(registry(), "shed_total", { reason: "overload" }), 2);
  t.equal(await registryValue(registry(), "wait_seconds_count"), 1);
  t.equal(await registryValue(registry(), "wait_seconds_bucket", { le: "1" }), 1);
});

t.test("a registered metric without a matching series: 0, undefined, []", async (t) => {
  t.equal(await registrySum(registry(), "never_total"), 0);
  t.equal(await registryValue(registry(), "shed_total", { reason: "cancelled" }), undefined);
  t.same(await registrySamples(registry(), "never_total"), []);
});

t.test("a metric that is not registered is an error", async (t) => {
  await t.rejects(registrySum(registry(), "shed_totals"), /"shed_totals" is not registered/);
  await t.rejects(registryValue(registry(), "wait_second_count"), /not registered/);
});

t.test("an ambiguous single value is an error", async (t) => {
  await t.rejects(registryValue(registry(), "shed_total"), /2 samples of "shed_total"/);
});

t.test("a histogram read by its base name is an error: it has no series of that name", async (t) => {
  await t.rejects(registrySum(registry(), "wait_seconds"), /"wait_seconds" is a histogram: read its _bucket/);
});
