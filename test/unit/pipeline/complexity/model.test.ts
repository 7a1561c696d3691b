import t from "tap";
import { complexityRouteSchema } from "../../../../src/pipeline/complexity/config.js";
import { emptyFeatures, type Features } from "../../../../src/pipeline/complexity/features.js";
import { LatencyModel, type MODEL_FEATURES } from "../../../../src/pipeline/complexity/model.js";
import { gaussian, seededRandom } from "./fixtures.js";

const modelConfig = complexityRouteSchema.parse({}).model;

function chat(inputTokens: number, outputTokens: number, images = 0): Features {
  return { ...emptyFeatures("chat"), inputTokens, outputTokens, images };
}

/** Ground truth: 80 ms + 40 ms per 1k input tokens + 2.5 s per 1k output tokens + 150 ms per image. */
function truth(features: Features): number {
  return 80 + (40 * features.inputTokens) / 1000 + (2500 * features.outputTokens) / 1000 + 150 * features.images;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function coefficient(model: LatencyModel, name: (typeof MODEL_FEATURES)[number]): number {
  return model.coefficients().get(name) ?? Number.NaN;
}

/** Smallest coefficient (any feature) and intercept seen after any update, and the smallest prediction ÷ floor. */
class BoundsWatch {
  minCoefficient = Number.POSITIVE_INFINITY;
  minIntercept = Number.POSITIVE_INFINITY;
  minAboveFloor = Number.POSITIVE_INFINITY;

  observe(model: LatencyModel, probe: Features): void {
    for (const [name, value] of model.coefficients()) {
      this.minCoefficient = Math.min(this.minCoefficient, value);
      if (name === "intercept") this.minIntercept = Math.min(this.minIntercept, value);
    }
    if (model.fitted) this.minAboveFloor = Math.min(this.minAboveFloor, model.predict(probe) - model.floor);
  }
}

// The demo model as the shed benchmark runs it (bench/shed/workload.ts, src/demo/server.ts):
// 60 ms + 20 ms per KiB of body + 1 ms per requested token, prompts of a few words to a few KiB and
// output budgets of 8 to 1024 tokens, both log-normal, answered with about max_tokens tokens; and
// the stack's noise: ~2.5 ms of transport and 2% jitter.
interface DemoRequest {
  readonly features: Features;
  /** The request's unloaded latency. */
  readonly truthMs: number;
}

function demoTraffic(seed: number): () => DemoRequest {
  const random = seededRandom(seed);
  const logNormal = (median: number, sigma: number): number => median * Math.exp(sigma * gaussian(random));
  return () => {
    const promptChars = Math.round(Math.min(8_000, Math.max(20, logNormal(400, 1))));
    const maxTokens = Math.round(Math.min(1024, Math.max(8, logNormal(96, 0.8))));
    const bodyBytes = promptChars + 80;
    const features = chat(Math.round(promptChars / 4) + 7, maxTokens);
    return { features, truthMs: 60 + (20 * bodyBytes) / 1024 + maxTokens };
  };
}

function observe(random: () => number, truthMs: number): number {
  return truthMs * (1 + 0.02 * gaussian(random)) + 2.5 * Math.exp(0.35 * gaussian(random));
}

/** Median |predicted − truth| / truth over `count` fresh requests the model does not learn from. */
function heldOutError(model: LatencyModel, next: () => DemoRequest, count: number): number {
  const errors: number[] = [];
  for (let index = 0; index < count; index++) {
    const request = next();
    const unloaded = request.truthMs + 2.5;
    errors.push(Math.abs(model.predict(request.features) - unloaded) / unloaded);
  }
  return median(errors);
}

/** A default model trained on `count` requests of `next`, its bounds watched; `early`: its coefficients after 2000. */
function train(
  next: () => DemoRequest,
  seed: number,
  count: number,
): {
  model: LatencyModel;
  watch: BoundsWatch;
  early: Map<string, number>;
} {
  const random = seededRandom(seed);
  const model = new LatencyModel(modelConfig);
  const watch = new BoundsWatch();
  let early = new Map<string, number>();
  for (let index = 0; index < count; index++) {
    const request = next();
    model.update(request.features, observe(random, request.truthMs));
    watch.observe(model, chat(0, 0));
    if (index === 1999) early = new Map(model.coefficients());
  }
  return { model, watch, early };
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
  t.ok(Math.abs(model.predict(request) - 10) < 0.5, `fitted: ${model.predict(request)}`);
});

t.test("converges on noisy synthetic data (seeded)", async (t) => {
  const random = seededRandom(7);
  const model = new LatencyModel({ ...modelConfig, forgetting: 0.999 });
  let fitted = 0;
  let squaredNoise = 0;
  for (let index = 0; index < 3000; index++) {
    const features = chat(
      Math.floor(random() * 8000),
      Math.floor(random() * 1000),
      random() < 0.2 ? Math.ceil(random() * 3) : 0,
    );
    // Realistic noise: proportional jitter plus a few milliseconds of transport.
    const noise = 0.03 * truth(features) * gaussian(random) + 5 * gaussian(random);
    if (index >= 2000) squaredNoise += noise * noise;
    if (model.update(features, truth(features) + noise) === "fitted") fitted++;
  }
  t.equal(fitted, 3000);
  t.ok(Math.abs(coefficient(model, "intercept") - 80) < 10, `intercept ${coefficient(model, "intercept")}`);
  t.ok(Math.abs(coefficient(model, "input_ktokens") - 40) < 5, `input ${coefficient(model, "input_ktokens")}`);
  t.ok(Math.abs(coefficient(model, "output_ktokens") - 2500) < 50, `output ${coefficient(model, "output_ktokens")}`);
  t.ok(Math.abs(coefficient(model, "images") - 150) < 15, `images ${coefficient(model, "images")}`);
  const probe = chat(4000, 300, 1);
  t.ok(Math.abs(model.predict(probe) - truth(probe)) / truth(probe) < 0.02, `probe ${model.predict(probe)}`);
  const variance = model.residualVariance;
  const noiseVariance = squaredNoise / 1000;
  t.ok(
    variance > 0.5 * noiseVariance && variance < 2 * noiseVariance,
    `residual variance ${variance} ≈ ${noiseVariance}`,
  );
});

t.test("symmetric noise as large as a small request: the fit stays near the truth", async (t) => {
  // 30 ms of Gaussian noise on an 80 ms request is ±37%: the relative fit weighs such requests most
  // and leans toward their faster samples, so its intercept is low by ~15 ms; predictions of
  // typical requests stay within 2%.
  const random = seededRandom(7);
  const model = new LatencyModel({ ...modelConfig, forgetting: 0.999 });
  for (let index = 0; index < 3000; index++) {
    const features = chat(Math.floor(random() * 8000), Math.floor(random() * 1000));
    model.update(features, truth(features) + 30 * gaussian(random));
  }
  t.ok(Math.abs(coefficient(model, "intercept") - 80) < 25, `intercept ${coefficient(model, "intercept")}`);
  t.ok(Math.abs(coefficient(model, "output_ktokens") - 2500) < 50, `output ${coefficient(model, "output_ktokens")}`);
  for (const probe of [chat(4000, 300), chat(1000, 100), chat(7000, 900)])
    t.ok(Math.abs(model.predict(probe) - truth(probe)) / truth(probe) < 0.02, `probe ${model.predict(probe)}`);
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
  t.equal(model.update(chat(100, 100), 4_000_000), "rejected", "over an hour");
  t.equal(model.update({ ...chat(100, 100), inputTokens: Number.NaN }, 100), "rejected");
  t.equal(model.samples, 0);
  // Identical requests excite one direction only; the fit must stay solvable and exact there.
  let fitted = 0;
  for (let index = 0; index < 20_000; index++) if (model.update(chat(500, 100), 300) === "fitted") fitted++;
  t.equal(fitted, 20_000);
  t.ok(Math.abs(model.predict(chat(500, 100)) - 300) < 1);
  const images = { ...chat(500, 100), images: 1 };
  t.ok(
    Number.isFinite(model.predict(images)) && model.predict(images) >= 300,
    "an unseen feature adds, never subtracts",
  );
  const huge = { ...emptyFeatures("kserve"), tensorBytes: 8e12 };
  const result = model.update(huge, 1000);
  t.ok(result === "fitted" || result === "reset");
  t.ok(Number.isFinite(model.predict(chat(500, 100))));
  t.ok(model.predict(chat(0, 0)) > 0, "predictions stay positive");
});

t.test("a prior with zero coefficients (features assumed free) fits like any other", async (t) => {
  const model = new LatencyModel({
    ...modelConfig,
    prior: { ...modelConfig.prior, msPerInputKToken: 0, msPerOtherMB: 0 },
    minSamples: 1,
  });
  const requests = [chat(20, 256), chat(20, 256), chat(3500, 4096), chat(12, 16)];
  for (const [index, features] of requests.entries())
    t.equal(model.update(features, 2 + index / 10), "fitted", `request ${index}`);
  t.ok([...model.coefficients().values()].every((value) => Number.isFinite(value) && value >= 0));
  t.ok(Math.abs(model.predict(chat(20, 256)) - 2.05) < 0.5, `${model.predict(chat(20, 256))}`);
});

t.test("a state that goes non-finite is reset to the prior", async (t) => {
  const model = new LatencyModel({ ...modelConfig, minSamples: 1 });
  for (let index = 0; index < 50; index++) model.update(chat(100 * index, 50), 100 + index);
  // x² overflows: the statistics become infinite and the system cannot be solved.
  t.equal(model.update({ ...emptyFeatures("kserve"), tensorBytes: 1e200 }, 100), "reset");
  t.equal(model.samples, 0);
  t.equal(model.fitted, false);
  t.same(
    [...model.coefficients().values()],
    [
      modelConfig.prior.baseMs,
      modelConfig.prior.msPerInputKToken,
      modelConfig.prior.msPerOutputKToken,
      modelConfig.prior.msPerImage,
      modelConfig.prior.msPerTensorMB,
      modelConfig.prior.msPerOtherMB,
    ],
  );
  t.equal(model.update(chat(100, 50), 120), "fitted", "and learns again");
  t.ok(Number.isFinite(model.predict(chat(100, 50))));
});

t.test("a stream of demo-like traffic: accurate on held-out requests, within bounds throughout", async (t) => {
  const { model, watch } = train(demoTraffic(21), 22, 3000);
  t.ok(watch.minCoefficient >= 0, `coefficients never negative (min ${watch.minCoefficient})`);
  t.ok(watch.minIntercept >= 0, `intercept never negative (min ${watch.minIntercept})`);
  t.ok(watch.minAboveFloor >= 0, "no fitted prediction below the floor");
  const error = heldOutError(model, demoTraffic(23), 1000);
  t.ok(error <= 0.25, `median relative error on held-out requests ${error} (target 25%)`);
  t.ok(error <= 0.05, `well within it: ${error}`);
  // 60 ms + the transport, ~78 ms per 1000 prompt tokens (20 ms per KiB at ~4 bytes a token), 1 s per 1000 output tokens.
  t.ok(Math.abs(coefficient(model, "intercept") - 63) < 10, `intercept ${coefficient(model, "intercept")}`);
  t.ok(Math.abs(coefficient(model, "output_ktokens") - 1000) < 50, `output ${coefficient(model, "output_ktokens")}`);
});

t.test("load-inflated samples: the fit stays near the unloaded latency", async (t) => {
  // A third of the answers waited in a queue or a full batch: 1.5× to 5× their unloaded latency.
  const next = demoTraffic(31);
  const random = seededRandom(32);
  const model = new LatencyModel(modelConfig);
  const watch = new BoundsWatch();
  for (let index = 0; index < 3000; index++) {
    const request = next();
    const inflation = random() < 1 / 3 ? 1.5 + 3.5 * random() : 1;
    model.update(request.features, inflation * observe(random, request.truthMs));
    watch.observe(model, chat(0, 0));
  }
  t.ok(watch.minCoefficient >= 0 && watch.minIntercept >= 0, "coefficients and intercept never negative");
  t.ok(watch.minAboveFloor >= 0, "no fitted prediction below the floor");
  const error = heldOutError(model, demoTraffic(33), 1000);
  t.ok(error <= 0.25, `median relative error against the unloaded latency ${error} (target 25%)`);
  // An unweighted fit would take the mean inflation, 1 + (2.25 × 1/3) = 1.75×.
  t.ok(coefficient(model, "output_ktokens") < 1.35 * 1000, `output ${coefficient(model, "output_ktokens")}`);
});

t.test("one stalled request does not drag the fit", async (t) => {
  const next = demoTraffic(41);
  const random = seededRandom(42);
  const model = new LatencyModel(modelConfig);
  for (let index = 0; index < 1000; index++) {
    const request = next();
    model.update(request.features, observe(random, request.truthMs));
  }
  const probe = chat(300, 200);
  const before = model.predict(probe);
  t.equal(model.update(chat(300, 200), 100 * before), "fitted");
  t.ok(Math.abs(model.predict(probe) - before) / before < 0.02, `${before} → ${model.predict(probe)}`);
});

t.test("collinear inputs (output tokens ∝ input tokens): bounded, accurate, no drift", async (t) => {
  const base = demoTraffic(51);
  const seed = 52;
  const next = (): DemoRequest => {
    const request = base();
    const output = Math.round(request.features.inputTokens / 2);
    const features = { ...request.features, outputTokens: output };
    return { features, truthMs: request.truthMs - request.features.outputTokens + output };
  };
  const { model, watch, early } = train(next, seed, 6000);
  t.ok(watch.minCoefficient >= 0, `coefficients never negative (min ${watch.minCoefficient})`);
  t.ok(watch.minIntercept >= 0, `intercept never negative (min ${watch.minIntercept})`);
  t.ok(watch.minAboveFloor >= 0, "no fitted prediction below the floor");
  const error = heldOutError(model, next, 1000);
  t.ok(error <= 0.05, `median relative error on the route's traffic ${error}`);
  // The split between the two collinear coefficients is the prior's, not wherever noise pushed it.
  for (const name of ["input_ktokens", "output_ktokens"] as const) {
    const then = early.get(name) ?? Number.NaN;
    const now = coefficient(model, name);
    t.ok(Math.abs(now - then) <= 0.1 * Math.max(then, 50), `${name} ${then} → ${now}`);
  }
  // Off the line the data lies on, a prediction is still a sane latency.
  const off = model.predict(chat(2000, 0));
  t.ok(off >= model.floor && off < 1000, `2000 prompt tokens, no output: ${off} ms`);
});

t.test("a route with a single feature varying: the intercept's twin and unused features stay put", async (t) => {
  // Every request asks for 256 output tokens (a client library's default); only prompts vary.
  const base = demoTraffic(61);
  const seed = 62;
  const next = (): DemoRequest => {
    const request = base();
    const features = { ...request.features, outputTokens: 256 };
    return { features, truthMs: request.truthMs - request.features.outputTokens + 256 };
  };
  const { model, watch, early } = train(next, seed, 6000);
  t.ok(watch.minCoefficient >= 0 && watch.minIntercept >= 0, "coefficients and intercept never negative");
  t.ok(watch.minAboveFloor >= 0, "no fitted prediction below the floor");
  const error = heldOutError(model, next, 1000);
  t.ok(error <= 0.05, `median relative error on the route's traffic ${error}`);
  t.ok(
    Math.abs(coefficient(model, "input_ktokens") - 78) < 15,
    `the varying feature is learned: ${coefficient(model, "input_ktokens")}`,
  );
  // Features the route never sends keep the prior's proportions (images : tensor MB = 100 : 50).
  t.ok(Math.abs(coefficient(model, "images") / coefficient(model, "tensor_mb") - 2) < 1e-6);
  for (const name of ["intercept", "output_ktokens", "images"] as const) {
    const then = early.get(name) ?? Number.NaN;
    const now = coefficient(model, name);
    t.ok(Math.abs(now - then) <= 0.05 * then, `${name} does not drift: ${then} → ${now}`);
  }
  // Another output budget, never seen: extrapolated from the rescaled prior, not from a negative intercept.
  const other = chat(100, 1024);
  const truthOther = 60 + (20 * (400 + 80)) / 1024 + 1024 + 2.5;
  t.ok(
    Math.abs(model.predict(other) - truthOther) / truthOther < 0.2,
    `1024 output tokens: ${model.predict(other)} vs ${truthOther}`,
  );
});

t.test("a fast upstream behind the LLM-tuned prior (100× off): the intercept stays ≥ 0", async (t) => {
  // An embeddings model: 2 ms + 0.5 ms per 1000 input tokens, nothing generated.
  const random = seededRandom(71);
  const model = new LatencyModel(modelConfig);
  const watch = new BoundsWatch();
  const sample = (): { features: Features; truthMs: number } => {
    const inputTokens = Math.round(20 * Math.exp(1.2 * gaussian(random))) + 1;
    return { features: { ...emptyFeatures("embeddings"), inputTokens }, truthMs: 2 + (0.5 * inputTokens) / 1000 };
  };
  for (let index = 0; index < 2000; index++) {
    const { features, truthMs } = sample();
    model.update(features, truthMs * (1 + 0.05 * gaussian(random)));
    watch.observe(model, emptyFeatures("embeddings"));
  }
  t.ok(watch.minCoefficient >= 0 && watch.minIntercept >= 0, "coefficients and intercept never negative");
  const errors: number[] = [];
  for (let index = 0; index < 500; index++) {
    const { features, truthMs } = sample();
    errors.push(Math.abs(model.predict(features) - truthMs) / truthMs);
  }
  t.ok(median(errors) <= 0.1, `median relative error ${median(errors)}`);
});

t.test("the floor: the smallest recent latency, under every fitted prediction", async (t) => {
  const next = demoTraffic(81);
  const random = seededRandom(82);
  const model = new LatencyModel(modelConfig);
  t.equal(model.floor, 0, "nothing observed yet");
  let smallest = Number.POSITIVE_INFINITY;
  for (let index = 0; index < 800; index++) {
    const request = next();
    const observed = observe(random, request.truthMs);
    smallest = Math.min(smallest, observed);
    model.update(request.features, observed);
  }
  t.equal(model.floor, smallest);
  t.ok(model.predict(emptyFeatures("chat")) >= model.floor, "a request with no features at all");
  // The floor forgets: after 1000 requests 30% slower, it is the slower traffic's smallest.
  let slowest = Number.POSITIVE_INFINITY;
  for (let index = 0; index < 1000; index++) {
    const request = next();
    const observed = 1.3 * observe(random, request.truthMs);
    slowest = Math.min(slowest, observed);
    model.update(request.features, observed);
  }
  t.equal(model.floor, slowest);
});
