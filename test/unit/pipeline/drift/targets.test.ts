// Issue 20's targets on generated traffic (bench/drift-population.ts), with the default thresholds
// and minimum sample: a label shift of PSI ≈ 0.2 is caught within 500 answers, and an unchanged
// model raises no alarm, checked every 100 answers. bench/drift-eval.ts runs the long version.
import t from "tap";
import { COMPARE, observe, profile, profileOf, SCENARIOS, STEADY } from "../../../../bench/drift-population.js";
import { compareVersion } from "../../../../src/pipeline/drift/compare.js";
import { seededRandom } from "../../../../src/util/seeded-random.js";

const baseline = profileOf("v1", STEADY, 1, 5_000);

t.test("each scenario is caught within 500 answers, as what it is", async (t) => {
  for (const [name, { population, expect }] of Object.entries(SCENARIOS)) {
    for (let seed = 100; seed < 105; seed++) {
      const { verdict } = compareVersion(profileOf("v2", population, seed, 500), baseline, COMPARE);
      t.equal(verdict, expect, `${name}, seed ${seed}`);
    }
  }
});

t.test("an unchanged model raises no alarm over 20 000 answers, checked every 100", async (t) => {
  const random = seededRandom(900);
  const version = profile("v1b");
  const verdicts = new Map<string, number>();
  for (let answers = 1; answers <= 20_000; answers++) {
    observe(version, STEADY, random);
    if (answers % 100 !== 0) continue;
    const { verdict } = compareVersion(version, baseline, COMPARE);
    verdicts.set(verdict, (verdicts.get(verdict) ?? 0) + 1);
  }
  t.same(Object.fromEntries(verdicts), { insufficient_data: 1, stable: 199 });
});
