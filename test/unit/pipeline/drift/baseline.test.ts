import t from "tap";
import { TrafficWindow } from "../../../../src/pipeline/drift/baseline.js";

t.test("the baseline is the version with most answers in the trailing window", async (t) => {
  const window = new TrafficWindow(60_000);
  t.equal(window.busiest(0), undefined, "no traffic, no baseline");
  for (let i = 0; i < 10; i++) window.record("v1", 1_000);
  for (let i = 0; i < 4; i++) window.record("v2", 2_000);
  t.equal(window.busiest(3_000), "v1");
  t.equal(window.recent("v1", 3_000), 10);
  // A minute later v1's answers have left the window; v2 keeps answering.
  for (let i = 0; i < 3; i++) window.record("v2", 65_000);
  t.equal(window.recent("v1", 70_000), 0);
  t.equal(window.busiest(70_000), "v2");
  t.equal(window.busiest(10_000_000), "v2", "an idle route keeps its baseline");
});

t.test("a tie goes to the version seen first", async (t) => {
  const window = new TrafficWindow(60_000);
  window.record("v1", 0);
  window.record("v2", 0);
  t.equal(window.busiest(1), "v1");
});
