import t from "tap";
import { DemandGauge } from "../../../../src/pipeline/admission/demand.js";

t.test("arrivals ÷ completions over the last time constants", async (t) => {
  const gauge = new DemandGauge();
  t.equal(gauge.ratio(0, 1_000), Number.POSITIVE_INFINITY, "nothing completed yet");
  for (let ms = 0; ms < 5_000; ms += 100) {
    gauge.arrive(10, ms, 1_000);
    gauge.complete(10, ms, 1_000);
  }
  t.ok(Math.abs(gauge.ratio(5_000, 1_000) - 1) < 1e-9, "as much completes as arrives: 1");
  // Twice as much arrives as completes from now on: the ratio climbs towards 2 within a few time constants.
  for (let ms = 5_000; ms < 10_000; ms += 100) {
    gauge.arrive(20, ms, 1_000);
    gauge.complete(10, ms, 1_000);
  }
  const ratio = gauge.ratio(10_000, 1_000);
  t.ok(ratio > 1.95 && ratio <= 2, `overload reads ${ratio.toFixed(3)}`);
});

t.test("old arrivals fade: a burst long past does not read as overload", async (t) => {
  const gauge = new DemandGauge();
  gauge.arrive(1_000, 0, 1_000);
  gauge.complete(10, 0, 1_000);
  t.ok(gauge.ratio(0, 1_000) > 50, "the burst reads as overload while it lasts");
  for (let ms = 1_000; ms <= 10_000; ms += 100) {
    gauge.arrive(10, ms, 1_000);
    gauge.complete(10, ms, 1_000);
  }
  t.ok(gauge.ratio(10_000, 1_000) < 1.01, "ten time constants later it is gone");
});
