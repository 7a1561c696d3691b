import t from "tap";
import { BoundedLabel, TopLabel } from "../../../src/metrics/labels.js";

t.test("BoundedLabel: the first values seen keep their name, later ones are other", async (t) => {
  const label = new BoundedLabel(2, 4);
  t.same(
    ["alpha", "beta", "gamma", "alpha", undefined].map((value) => label.value(value)),
    ["alph", "beta", "other", "alph", "none"],
  );
});

t.test("TopLabel: the heaviest keys are named, whatever the order they arrived in", async (t) => {
  const weights = new Map<string, number>([
    ["early-light", 1],
    ["early-heavy", 50],
  ]);
  const label = new TopLabel(2, 6, (key) => weights.get(key) ?? 0);
  t.equal(label.value("early-light", "tenant-early-light"), "tenant", "clipped to 6 characters");
  t.equal(label.value("early-heavy", "heavy1"), "heavy1");
  weights.set("late-quiet", 0);
  t.equal(label.value("late-quiet", "quiet"), "other", "lighter than every named key");
  weights.set("late-heavy", 20);
  t.equal(label.value("late-heavy", "heavy2"), "heavy2", "outweighs the lightest named key");
  t.equal(label.value("early-light", "tenant-early-light"), "other", "which reads other from then on");
  t.equal(label.value("early-heavy", "heavy1"), "heavy1", "the heavy one keeps its name");
  weights.set("early-light", 100);
  t.equal(label.value("early-light", "tenant-early-light"), "tenant", "back when it is among the heaviest again");
  t.equal(label.value("late-heavy", "heavy2"), "other");
});
