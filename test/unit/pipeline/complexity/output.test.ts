import t from "tap";
import { complexityRouteSchema } from "../../../../src/pipeline/complexity/config.js";
import { OutputEstimate } from "../../../../src/pipeline/complexity/output.js";
import { gaussian, seededRandom } from "./fixtures.js";

const defaults = complexityRouteSchema.parse({});
const config = defaults.output;
const unlimited = { generations: 1 } as const;

/** Answers of about `mean` tokens (σ = 20%, seeded), as a route whose model answers at that length. */
function answers(mean: number, seed: number): () => number {
  const random = seededRandom(seed);
  return () => Math.max(1, Math.round(mean * (1 + 0.2 * gaussian(random))));
}

t.test("a route whose answers are about 500 tokens moves its estimate from the default to 500", async (t) => {
  const estimate = new OutputEstimate(config, defaults.defaultMaxOutputTokens);
  const next = answers(500, 3);
  t.equal(estimate.tokens, 256, "the configured default before any report");
  for (let i = 1; i < config.minSamples; i++) t.equal(estimate.learn(unlimited, next()), "learned");
  t.equal(estimate.tokens, 256, "still the default one answer short of minSamples");
  t.equal(estimate.expected({ generations: 1, limit: 4000 }), 4000, "and a request is priced at its max_tokens");
  estimate.learn(unlimited, next());
  t.ok(Math.abs(estimate.tokens - 500) < 25, `learned after minSamples answers: ${estimate.tokens.toFixed(1)}`);
  for (let i = 0; i < 500; i++) estimate.learn(unlimited, next());
  t.ok(Math.abs(estimate.tokens - 500) < 25, `stays there: ${estimate.tokens.toFixed(1)}`);
  t.equal(estimate.samples, 530);
});

t.test("max_tokens clamps the learned size; every generation counts", async (t) => {
  const estimate = new OutputEstimate({ ...config, minSamples: 1 }, 256);
  estimate.learn(unlimited, 500);
  t.equal(estimate.expected(unlimited), 500);
  t.equal(estimate.expected({ generations: 1, limit: 100 }), 100, "an answer cannot outgrow its max_tokens");
  t.equal(estimate.expected({ generations: 1, limit: 4000 }), 500, "a generous max_tokens is no forecast");
  t.equal(estimate.expected({ generations: 3, limit: 100 }), 300, "n = 3");
  t.equal(estimate.expected({ generations: 0 }), 0, "nothing generated");
  estimate.learn({ generations: 4 }, 4 * 300);
  t.equal(estimate.tokens, 400, "a report covers all generations: 1200 over n = 4 is 300 each");
});

t.test("an answer cut at its max_tokens may raise the estimate, never lower it", async (t) => {
  const estimate = new OutputEstimate({ ...config, minSamples: 1, memory: 2 }, 256);
  estimate.learn(unlimited, 500);
  t.equal(estimate.learn({ generations: 1, limit: 100 }, 100), "skipped_truncated", "its real length is ≥ 100");
  t.equal(estimate.tokens, 500);
  t.equal(estimate.learn({ generations: 1, limit: 900 }, 900), "learned", "its real length is ≥ 900 > 500");
  t.equal(estimate.tokens, 700);
  t.equal(estimate.learn({ generations: 1, limit: 900 }, 300), "learned", "ended before its limit: its own length");
  t.equal(estimate.tokens, 500);
});

t.test("the estimate forgets: a new model version's shorter answers take over within its memory", async (t) => {
  const estimate = new OutputEstimate({ ...config, minSamples: 10, memory: 50 }, 256);
  const long = answers(800, 5);
  for (let i = 0; i < 200; i++) estimate.learn(unlimited, long());
  t.ok(Math.abs(estimate.tokens - 800) < 40, `${estimate.tokens.toFixed(1)}`);
  const short = answers(200, 6);
  // Each answer weighs 1/50: after 4 memories the old length's share is (49/50)^200 ≈ 2%.
  for (let i = 0; i < 200; i++) estimate.learn(unlimited, short());
  t.ok(Math.abs(estimate.tokens - 200) < 30, `${estimate.tokens.toFixed(1)}`);
  // One answer cannot drag it far: an outlier 100× the mean moves it by at most 1/memory of the gap.
  const before = estimate.tokens;
  estimate.learn(unlimited, 20_000);
  t.ok(
    estimate.tokens - before <= (20_000 - before) / 50 + 1e-9,
    `${before.toFixed(1)} → ${estimate.tokens.toFixed(1)}`,
  );
});

t.test("a route whose answers run to their max_tokens expects a request to run to its own", async (t) => {
  const estimate = new OutputEstimate({ ...config, minSamples: 10, memory: 50 }, 256);
  const random = seededRandom(7);
  for (let i = 0; i < 100; i++) {
    const limit = 50 + Math.round(random() * 300);
    estimate.learn({ generations: 1, limit }, limit);
  }
  t.ok(estimate.tokens < 350, `the mean of the cut answers: ${estimate.tokens.toFixed(0)}`);
  t.equal(Math.round(estimate.expected({ generations: 1, limit: 925 })), 925, "expected at its max_tokens");
  // Half of the answers end early at ~100 tokens: a request expects half of each.
  for (let i = 0; i < 200; i++) estimate.learn({ generations: 1, limit: 1_000 }, i % 2 === 0 ? 1_000 : 100);
  const expected = estimate.expected({ generations: 1, limit: 2_000 });
  t.ok(expected > 900 && expected < 1_600, `between the mean and the limit: ${expected.toFixed(0)}`);
  t.equal(estimate.expected({ generations: 1 }), estimate.tokens, "no max_tokens: the mean");
});
