import t from "tap";
import { metricSum } from "../../../bench/metrics-text.js";

const EXPOSITION = [
  "# HELP guard_shed_total Requests shed",
  "# TYPE guard_shed_total counter",
  'guard_shed_total{reason="shed.overload",priority="sheddable"} 3',
  'guard_shed_total{reason="shed.queue_full",priority="sheddable"} 2',
  "# TYPE guard_replies_total counter",
  "# TYPE guard_wait_seconds histogram",
  'guard_wait_seconds_bucket{le="0.5",pool="default"} 4',
  'guard_wait_seconds_count{pool="default"} 5',
].join("\n");

t.test("sums the series whose labels match", async (t) => {
  t.equal(metricSum(EXPOSITION, "guard_shed_total"), 5);
  t.equal(metricSum(EXPOSITION, "guard_shed_total", { reason: "shed.overload" }), 3);
  t.equal(metricSum(EXPOSITION, "guard_wait_seconds_count", { pool: "default" }), 5);
  t.equal(metricSum(EXPOSITION, "guard_wait_seconds_bucket", { le: "0.5" }), 4);
});

t.test("an exposed metric with no matching series is 0", async (t) => {
  t.equal(metricSum(EXPOSITION, "guard_replies_total"), 0);
  t.equal(metricSum(EXPOSITION, "guard_shed_total", { priority: "critical" }), 0);
});

t.test("a metric the text does not expose is an error, not 0", async (t) => {
  t.throws(() => metricSum(EXPOSITION, "guard_shed_totals"), /"guard_shed_totals" is not exposed/);
  t.throws(() => metricSum(EXPOSITION, "guard_queue_wait_seconds_count"), /not exposed/);
});
