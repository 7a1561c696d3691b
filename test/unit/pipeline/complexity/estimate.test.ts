import fc from "fast-check";
import { countTokens } from "gpt-tokenizer/encoding/o200k_base";
import t from "tap";
import { type EstimateOptions, estimateBody, shapeFromBody } from "../../../../src/pipeline/complexity/estimate.js";
import { IMAGE_TOKENS_HIGH_DETAIL, IMAGE_TOKENS_LOW_DETAIL } from "../../../../src/pipeline/complexity/features.js";
import { OutputEstimate } from "../../../../src/pipeline/complexity/output.js";
import { estimateTextTokens } from "../../../../src/pipeline/complexity/tokens.js";
import { shapeFromPath } from "../../../../src/pipeline/request-shape.js";
import { fixtureBytes, fixtureJson } from "./fixtures.js";

// Nothing learned yet: a request is expected to produce its max_tokens, or 256 when it names none.
const unlearned = new OutputEstimate({ learn: true, minSamples: 30, memory: 200 }, 256);
const options: EstimateOptions = {
  maxBodyBytes: 1_048_576,
  maxDepth: 64,
  expectedOutput: (ask) => unlearned.expected(ask),
  countTokens: estimateTextTokens,
};
const exact = (text: string): number => countTokens(text, { disallowedSpecial: new Set<string>() });
const within = (actual: number, expected: number, tolerance: number): boolean =>
  Math.abs(actual - expected) <= tolerance * expected;

function estimateFixture(path: string, name: string, overrides: Partial<EstimateOptions> = {}) {
  return estimateBody(path, fixtureBytes(name), { ...options, ...overrides });
}

t.test("chat: long multilingual prompt, n and max_completion_tokens", async (t) => {
  const { features, fallback } = estimateFixture("/v1/chat/completions", "chat-multilingual.json");
  t.equal(fallback, undefined);
  t.equal(features.shape, "chat");
  const body = fixtureJson("chat-multilingual.json");
  const messages = body.messages as Array<{ content: string; name?: string }>;
  const textTokens = messages.reduce(
    (sum, message) => sum + exact(message.content) + (message.name ? exact(message.name) : 0),
    0,
  );
  const expected = textTokens + 4 * messages.length + 3;
  t.ok(within(features.inputTokens, expected, 0.1), `input ${features.inputTokens} vs exact ${expected}`);
  t.equal(features.outputTokens, 2048 * 2, "budget × n");
  t.equal(features.stream, false);
});

t.test("chat: images by detail", async (t) => {
  const { features } = estimateFixture("/v1/chat/completions", "chat-images.json");
  t.equal(features.images, 3);
  t.equal(
    features.imageTokens,
    IMAGE_TOKENS_LOW_DETAIL + 2 * IMAGE_TOKENS_HIGH_DETAIL,
    "low, high, and auto counted as high",
  );
  t.equal(features.outputTokens, 300);
  t.ok(features.inputTokens > 10 && features.inputTokens < 40, "only the text part is prompt text");
});

t.test("chat: tool definitions, tool calls and stream", async (t) => {
  const { features } = estimateFixture("/v1/chat/completions", "chat-tools.json");
  const body = fixtureJson("chat-tools.json");
  const definitionTokens = exact(JSON.stringify(body.tools));
  t.ok(within(features.toolTokens, definitionTokens, 0.2), `tools ${features.toolTokens} vs ${definitionTokens}`);
  t.ok(features.inputTokens > 60, "tool call arguments and tool results count as input");
  t.equal(features.stream, true);
  t.equal(features.outputTokens, 256, "default budget");
});

t.test("chat: code prompt and a JSON schema response format", async (t) => {
  const { features } = estimateFixture("/openai/v1/chat/completions?api-version=1", "chat-code.json");
  t.equal(features.shape, "chat", "query string and prefix are ignored");
  t.ok(features.toolTokens > 50, "response schema counted with definitions");
  t.ok(features.inputTokens > 800);
});

t.test("completions: prompts × best_of × budget", async (t) => {
  const { features } = estimateFixture("/v1/completions", "completions.json");
  t.equal(features.shape, "completions");
  t.equal(features.outputTokens, 400 * 3 * 2);
  t.ok(features.inputTokens > 200);
  const ids = estimateFixture("/v1/completions", "completions-token-ids.json").features;
  t.equal(ids.inputTokens, 10, "token id prompts are counted exactly");
  t.equal(ids.outputTokens, 16 * 2);
});

t.test("embeddings: inputs, no output", async (t) => {
  const { features } = estimateFixture("/v1/embeddings", "embeddings.json");
  const inputs = fixtureJson("embeddings.json").input as string[];
  const expected = inputs.reduce((sum, text) => sum + exact(text), 0);
  t.equal(features.shape, "embeddings");
  t.equal(features.outputTokens, 0);
  t.ok(within(features.inputTokens, expected, 0.1), `input ${features.inputTokens} vs ${expected}`);
});

t.test("responses: items, image, file, function calls, tools, schema", async (t) => {
  const { features } = estimateFixture("/v1/responses", "responses.json");
  t.equal(features.shape, "responses");
  t.equal(features.images, 1);
  t.equal(features.imageTokens, IMAGE_TOKENS_HIGH_DETAIL);
  t.ok(features.otherBytes > 0, "the input_file part is scored by size");
  t.ok(features.toolTokens > 30);
  t.equal(features.outputTokens, 1200);
  t.ok(features.inputTokens > 250);
});

t.test("KServe v2: tensor bytes from shapes and datatypes", async (t) => {
  const { features } = estimateFixture("/v2/models/resnet/versions/3/infer", "kserve-v2.json");
  const texts = ["what is in this picture?", "¿qué hay en esta imagen?"];
  t.equal(features.shape, "kserve");
  t.equal(features.tensorBytes, 3 * 8 * 8 * 4 + 2 * 16 * 8 + texts.join("").length + 2 * 4);
});

t.test("Triton binary extension: JSON header then raw tensors", async (t) => {
  const header = fixtureBytes("triton-binary-header.json");
  const body = new Uint8Array(header.length + 150528 + 64);
  body.set(header);
  body.fill(0x7b, header.length); // binary data full of "{" must not be scanned
  const { features, fallback } = estimateBody("/v2/models/vision/infer", body, options, header.length);
  t.equal(fallback, undefined);
  t.equal(features.tensorBytes, 150528 + 64);
});

t.test("shape detection from the body when the path says nothing", async (t) => {
  t.equal(estimateFixture("/gateway", "chat-images.json").features.shape, "chat");
  t.equal(estimateFixture("/gateway", "kserve-v2.json").features.shape, "kserve");
  t.equal(estimateFixture("/gateway", "completions.json").features.shape, "completions");
  t.equal(estimateFixture("/gateway", "embeddings.json").features.shape, "embeddings");
  t.equal(estimateFixture("/gateway", "responses.json").features.shape, "responses");
  t.equal(shapeFromBody({ hello: "world" }), "other");
  t.equal(shapeFromPath("/v2/models/m/infer"), "kserve");
  t.equal(shapeFromPath("/v2/models/m/ready"), undefined);
});

t.test("bad input falls back to size with a reason", async (t) => {
  const encode = (text: string): Uint8Array => new TextEncoder().encode(text);
  const chat = fixtureBytes("chat-multilingual.json");
  const cases: Array<[string, Uint8Array, string]> = [
    ["plain text", encode("hello, model"), "non_json"],
    ["JSON array", encode("[1,2,3]"), "non_json"],
    ["invalid JSON object", encode('{"messages": [1,,]}'), "non_json"],
    ["cut in a string", chat.subarray(0, 500), "truncated"],
    ["cut between values", encode('{"messages":[{"role":"user"}'), "truncated"],
    ["100 000 levels", encode(`{"a":${"[".repeat(100_000)}${"]".repeat(100_000)}}`), "too_deep"],
    ["chat path without messages", encode('{"prompt":"hi"}'), "unexpected_fields"],
  ];
  for (const [label, body, reason] of cases) {
    const estimate = estimateBody("/v1/chat/completions", body, options);
    t.equal(estimate.fallback, reason, label);
    t.equal(estimate.features.otherBytes, body.length, `${label}: scored by size`);
  }
  t.equal(estimateBody("/gateway", encode('{"query":"select 1"}'), options).fallback, "unknown_shape");
  const tooLarge = estimateBody("/v1/chat/completions", chat, { ...options, maxBodyBytes: 1000 });
  t.equal(tooLarge.fallback, "too_large");
  const empty = estimateBody("/v1/chat/completions", new Uint8Array(0), options);
  t.equal(empty.fallback, undefined, "no body is not a failure");
  t.equal(empty.features.otherBytes, 0);
});

t.test("escaped quotes and brackets inside strings do not confuse the scan", async (t) => {
  const body = new TextEncoder().encode(
    JSON.stringify({ messages: [{ role: "user", content: 'say \\"[[[{{{ and \\\\' }] }),
  );
  const estimate = estimateBody("/v1/chat/completions", body, { ...options, maxDepth: 3 });
  t.equal(estimate.fallback, undefined);
});

t.test("hostile field types never throw", async (t) => {
  const hostile = [
    {
      messages: [null, 1, "x", { content: 5 }, { content: [null, 7, { type: "image_url" }, { text: 1 }] }],
      max_tokens: -5,
      n: "9",
    },
    { messages: [], max_completion_tokens: 1e308, n: 1e9 },
    { prompt: [[], [1, 2], "x", null] },
    {
      input: [
        { type: "reasoning", summary: [] },
        { role: "user", content: [{ type: "input_image" }] },
      ],
    },
    { inputs: [{ name: "x", shape: [1e9, 1e9, 1e9], datatype: "FP64" }] },
    { inputs: [{ name: "x", shape: [-1], datatype: "FP32" }] },
  ];
  for (const body of hostile) {
    const estimate = estimateBody("/gateway", new TextEncoder().encode(JSON.stringify(body)), options);
    t.ok(
      Number.isFinite(estimate.features.inputTokens + estimate.features.outputTokens + estimate.features.tensorBytes),
    );
  }
  const clamped = estimateBody(
    "/v1/chat/completions",
    new TextEncoder().encode('{"messages":[],"max_tokens":1e308,"n":1e9}'),
    options,
  );
  t.equal(clamped.features.outputTokens, 10_000_000 * 128, "budget and n are capped");
});

t.test("property: any bytes give a finite estimate", async (t) => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 512 }),
        fc.json().map((text) => new TextEncoder().encode(text)),
      ),
      (body) => {
        const estimate = estimateBody("/v1/chat/completions", body, options);
        const { features } = estimate;
        return [features.inputTokens, features.toolTokens, features.outputTokens, features.otherBytes].every(
          Number.isFinite,
        );
      },
    ),
    { seed: 42, numRuns: 500 },
  );
  t.pass("500 random bodies scored");
});
