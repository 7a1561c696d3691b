import { Histogram, Registry } from "prom-client";
import t from "tap";
import { BoundHistogram } from "../../../src/metrics/bound-histogram.js";

const BUCKETS = [0.001, 0.01, 0.1, 1];
const OBSERVATIONS: readonly [string, string, number][] = [
  ["cache", "request_body", 0.0004],
  ["cache", "request_body", 0.001],
  ["cache", "request_body", 0.05],
  ["contracts", "response_body", 2.5],
  ["contracts", "response_body", 0.01],
  ["cache", "request_body", 0.2],
];

function both() {
  const reference = new Registry();
  const bound = new Registry();
  const config = {
    name: "x_seconds",
    help: "Test histogram.",
    labelNames: ["stage", "phase"] as const,
    buckets: BUCKETS,
  };
  const histogram = new Histogram({ ...config, labelNames: [...config.labelNames], registers: [reference] });
  const fast = new BoundHistogram({ ...config, registers: [bound] });
  return { reference, bound, histogram, fast };
}

t.test("the same exposition and JSON as prom-client's Histogram for the same observations", async (t) => {
  const { reference, bound, histogram, fast } = both();
  for (const [stage, phase, seconds] of OBSERVATIONS) {
    histogram.observe({ stage, phase }, seconds);
    fast.labels({ stage, phase }).observe(seconds);
  }
  t.equal(await bound.metrics(), await reference.metrics(), "text exposition");
  const json = async (registry: Registry) =>
    (await registry.getMetricsAsJSON()).map(({ name, type, values }) => ({
      name,
      type,
      values: values.map((value) => ({
        metricName: (value as { metricName?: string }).metricName,
        labels: value.labels,
        value: value.value,
      })),
    }));
  t.same(await json(bound), await json(reference), "JSON, each value with all its labels");
  fast.reset();
  histogram.reset();
  fast.labels({ stage: "cache", phase: "request_body" }).observe(0.003);
  histogram.observe({ stage: "cache", phase: "request_body" }, 0.003);
  t.match(await bound.metrics(), /x_seconds_count\{stage="cache",phase="request_body"\} 1/);
  t.match(
    await bound.metrics(),
    /x_seconds_count\{stage="contracts",phase="response_body"\} 0/,
    "a reset keeps the series at 0",
  );
});

t.test("a bound series is one object per label set; its timer observes the time since it started", async (t) => {
  const { fast, bound } = both();
  const series = fast.labels({ stage: "a", phase: "b" });
  t.equal(fast.labels({ phase: "b", stage: "a" }), series, "label order does not matter");
  const stop = series.startTimer();
  await new Promise((resolve) => setTimeout(resolve, 20));
  stop();
  const sum = Number(/x_seconds_sum\{stage="a",phase="b"\} (\S+)/.exec(await bound.metrics())?.[1]);
  t.ok(sum >= 0.015 && sum < 1, `timed ${sum} s`);
});
