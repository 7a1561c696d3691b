import t from "tap";
import { complexityRouteSchema } from "../../../../src/pipeline/complexity/config.js";
import { emptyFeatures, type Features } from "../../../../src/pipeline/complexity/features.js";
import { LatencyModel } from "../../../../src/pipeline/complexity/model.js";
import { gaussian, seededRandom } from "./fixtures.js";

const modelConfig = complexityRouteSchema.parse({}).model;

function chat(inputTokens: number, outputTokens: number, images = 0): Features {
  return { ...emptyFeatures("chat"), inputTokens, outputTokens, images };
}

/** Ground truth: 80 ms + 40 ms per 1k input tokens + 2.5 s per 1k output tokens + 150 ms per image. */
function truth(features: Features): number {
  return 80 + (40 * features.inputTokens) / 1000 + (2500 * features.outputTokens) / 1000 + 150 * features.images;
}

t.test("uses the prior until minSamples", async (t) => {
  const model = new LatencyModel({ ...modelConfig, minSamples: 5 });
  const request = chat(2000, 500);
  const prior = modelConfig.prior;
  const expected = prior.baseMs + 2 * prior.msPerInputKToken + 0.5 * prior.msPerOutputKToken;
  t.equal(model.predict(request), expected);
  for (let index = 0; index < 4; index++) model.update(request, 10);
  t.equal(model.fitted, false);
  t.equal(model.predict(request), expected, "still the prior");
  model.update(request, 10);
  t.equal(model.fitted, true);
  t.not(model.predict(request), expected);
});

t.test("RLS converges on noisy synthetic data (seeded)", async (t) => {
  const random = seededRandom(7);
  const model = new LatencyModel({ ...modelConfig, forgetting: 0.999 });
  const noiseMs = 30;
  let fitted = 0;
  for (let index = 0; index < 3000; index++) {
    const features = chat(
      Math.floor(random() * 8000),
      Math.floor(random() * 1000),
      random() < 0.2 ? Math.ceil(random() * 3) : 0,
    );
    if (model.update(features, truth(features) + noiseMs * gaussian(random)) === "fitted") fitted++;
  }
  t.equal(fitted, 3000);
  const coefficients = model.coefficients();
  t.ok(Math.abs((coefficients.get("intercept") ?? 0) - 80) < 10, `intercept ${coefficients.get("intercept")}`);
  t.ok(Math.abs((coefficients.get("input_ktokens") ?? 0) - 40) < 3, `input ${coefficients.get("input_ktokens")}`);
  t.ok(Math.abs((coefficients.get("output_ktokens") ?? 0) - 2500) < 20, `output ${coefficients.get("output_ktokens")}`);
  t.ok(Math.abs((coefficients.get("images") ?? 0) - 150) < 10, `images ${coefficients.get("images")}`);
  const probe = chat(4000, 300, 1);
  t.ok(Math.abs(model.predict(probe) - truth(probe)) / truth(probe) < 0.02);
  const variance = model.residualVariance;
  t.ok(variance > 0.5 * noiseMs ** 2 && variance < 2 * noiseMs ** 2, `residual variance ${variance} ≈ ${noiseMs ** 2}`);
});

t.test("forgetting follows a change of hardware", async (t) => {
  const random = seededRandom(11);
  const model = new LatencyModel({ ...modelConfig, forgetting: 0.99 });
  const sample = () => chat(Math.floor(random() * 8000), Math.floor(random() * 1000));
  for (let index = 0; index < 1000; index++) {
    const features = sample();
    model.update(features, truth(features) + 10 * gaussian(random));
  }
  for (let index = 0; index < 1000; index++) {
    const features = sample();
    model.update(features, 2 * truth(features) + 10 * gaussian(random));
  }
  const probe = chat(4000, 500);
  t.ok(
    Math.abs(model.predict(probe) - 2 * truth(probe)) / (2 * truth(probe)) < 0.05,
    `predicts the slower hardware: ${model.predict(probe)} vs ${2 * truth(probe)}`,
  );
});

t.test("guards: non-finite and implausible observations, unexcited features, huge inputs", async (t) => {
  const model = new LatencyModel({ ...modelConfig, minSamples: 1 });
  t.equal(model.update(chat(100, 100), Number.NaN), "rejected");
  t.equal(model.update(chat(100, 100), -1), "rejected");
  t.equal(model.update(chat(100, 100), Number.POSITIVE_INFINITY), "rejected");
  t.equal(model.update({ ...chat(100, 100), inputTokens: Number.NaN }, 100), "rejected");
  t.equal(model.samples, 0);
  // Identical requests excite one direction only; forgetting must not wind the covariance up.
  let fitted = 0;
  for (let index = 0; index < 20_000; index++) if (model.update(chat(500, 100), 300) === "fitted") fitted++;
  t.equal(fitted, 20_000);
  t.ok(Math.abs(model.predict(chat(500, 100)) - 300) < 1);
  const images = { ...chat(500, 100), images: 1 };
  t.ok(Number.isFinite(model.predict(images)) && model.predict(images) > 0);
  const huge = { ...emptyFeatures("kserve"), tensorBytes: 8e12 };
  const result = model.update(huge, 1000);
  t.ok(result === "fitted" || result === "reset");
  t.ok(Number.isFinite(model.predict(chat(500, 100))));
  t.ok(model.predict(chat(0, 0)) >= 1, "predictions stay positive");
});
