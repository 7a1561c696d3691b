// Per-route settings of complexity scoring and routing (routes[].complexity). Every key has a
// default; an empty section keeps the stage off.
import { z } from "zod";
import { headerName, labelName, optionalHeaderName } from "../../config-kit/primitives.js";

const nonNegative = z.number().finite().min(0);

const weightsSchema = z
  .strictObject({
    /** Per estimated prompt token (messages, prompt, input, instructions). */
    inputToken: nonNegative.default(1),
    /** Per estimated token of tool/function definitions and response schemas. */
    toolToken: nonNegative.default(1),
    /** Per image token (85 for detail "low", 765 for "high"/"auto", a 1024×1024 image's cost). */
    imageToken: nonNegative.default(1),
    /** Per image, on top of its tokens (decoding and resizing work). */
    image: nonNegative.default(0),
    /** Per token of output budget (max tokens × n): decoding costs more per token than prefill. */
    outputToken: nonNegative.default(4),
    /** Per KiB of KServe v2 / Triton input tensors (elements × datatype size). */
    tensorKiB: nonNegative.default(1),
    /** Per KiB of a body that is not understood: 256 makes it comparable to ~4 bytes per token. */
    otherKiB: nonNegative.default(256),
  })
  .prefault({});

const tierSchema = z.strictObject({
  name: labelName(24),
  /** Requests whose cost is at least this go to this tier (the highest matching tier wins). */
  minCost: nonNegative,
});

const timeoutSchema = z
  .strictObject({
    /** Header Envoy's router reads as the upstream timeout; "" leaves timeouts alone. */
    header: optionalHeaderName.default("x-envoy-upstream-rq-timeout-ms"),
    /**
     * Timeout = predicted latency × factor, clamped to [floorMs, ceilingMs]. A streamed request
     * (`"stream": true`) gets ceilingMs: the timeout covers the whole stream.
     */
    factor: z.number().finite().min(1).max(100).default(3),
    floorMs: z.number().int().min(1).default(1_000),
    ceilingMs: z.number().int().min(1).default(120_000),
  })
  .prefault({});

const priorSchema = z
  .strictObject({
    /** The unloaded latency model used until `minSamples` requests completed, and its start. */
    baseMs: nonNegative.default(100),
    msPerInputKToken: nonNegative.default(100),
    msPerOutputKToken: nonNegative.default(5_000),
    msPerImage: nonNegative.default(100),
    msPerTensorMB: nonNegative.default(50),
    msPerOtherMB: nonNegative.default(200),
  })
  .prefault({});

const modelSchema = z
  .strictObject({
    prior: priorSchema,
    /**
     * Forgetting factor of the fit: each request weighs `forgetting` times less after every later
     * one, so the model remembers ~1/(1-forgetting) requests (0.995 → ~200) and follows a change of
     * hardware or model within minutes of traffic.
     */
    forgetting: z.number().min(0.9).max(1).default(0.995),
    /**
     * How many average requests the prior is worth: coefficients are pulled toward the prior
     * (rescaled to the upstream's observed speed) with this weight, measured in each feature's own
     * scale. The data decides where it varies; where it does not (features that never vary or
     * always move together) the coefficients stay at the rescaled prior instead of drifting.
     */
    priorWeight: z.number().finite().min(0.01).max(1_000).default(1),
    /** Completed requests needed before the fitted model replaces the prior. */
    minSamples: z.number().int().min(1).default(30),
  })
  .prefault({});

const outputSchema = z
  .strictObject({
    /**
     * Learn the route's output size from the completion tokens its upstream reports (the usage
     * stage). Off: a request is expected to produce its whole max_tokens, or defaultMaxOutputTokens
     * when it names none.
     */
    learn: z.boolean().default(true),
    /**
     * Reported answers needed before the learned size is used: it then replaces
     * defaultMaxOutputTokens and is clamped by a request's max_tokens. The latency model's default.
     */
    minSamples: z.number().int().min(1).default(30),
    /**
     * Answers the learned size remembers: it is their mean until then, and afterwards each new
     * answer weighs 1/memory. 200, as the latency model's forgetting (0.995), so both follow a new
     * model version at the same pace.
     */
    memory: z.number().int().min(1).default(200),
  })
  .prefault({});

const tokenizerSchema = z
  .strictObject({
    /**
     * "fast": character-class estimate, no vocabulary. "exact": gpt-tokenizer (loaded lazily at
     * start, ~15× slower): used for texts the request's scan budget reads in full and no longer
     * than exactMaxChars; larger ones still get the fast estimate so one huge prompt cannot
     * stall the event loop.
     */
    mode: z.enum(["fast", "exact"]).default("fast"),
    encoding: z.enum(["o200k_base", "cl100k_base"]).default("o200k_base"),
    exactMaxChars: z.number().int().min(0).default(16_384),
  })
  .prefault({});

export const complexityRouteSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    weights: weightsSchema,
    tiers: z
      .array(tierSchema)
      .min(1)
      .default([
        { name: "light", minCost: 0 },
        { name: "heavy", minCost: 8_000 },
      ]),
    /** Header set on the upstream request with the tier name; Envoy routes on it. */
    tierHeader: headerName.default("x-guard-tier"),
    timeout: timeoutSchema,
    tokenizer: tokenizerSchema,
    model: modelSchema,
    /** Output tokens assumed when a generation request names no max_tokens, until `output` has learned. */
    defaultMaxOutputTokens: z.number().int().min(0).default(256),
    output: outputSchema,
    /**
     * The upstream model's context window in tokens. A request whose estimated prompt (input, tools,
     * images) is larger gets the guard's 400 `request.context_length_exceeded` instead of reaching
     * the server for the same 400 (llama.cpp's `context_length_exceeded`) after queueing for it.
     * The estimate is the route's tokenizer's, not the model's: leave headroom for the difference.
     * Bodies scored by size only (too large, not JSON) are never refused by it.
     */
    contextWindow: z.number().int().min(1).optional(),
    /** Larger bodies are not parsed: they are scored by size (reason "too_large"). */
    maxBodyBytes: z.number().int().min(0).default(1_048_576),
    /** Deeper JSON is not parsed: it is scored by size (reason "too_deep"). */
    maxDepth: z.number().int().min(1).max(1_000).default(64),
  })
  .superRefine((complexity, ctx) => {
    // A disabled route keeps whatever the operator parked there; it is checked once enabled.
    if (!complexity.enabled) return;
    const names = new Set<string>();
    complexity.tiers.forEach((tier, tierIndex) => {
      if (names.has(tier.name))
        ctx.addIssue({
          code: "custom",
          path: ["tiers", tierIndex, "name"],
          message: `duplicate tier name "${tier.name}"`,
        });
      names.add(tier.name);
      if (tierIndex === 0 && tier.minCost !== 0) {
        ctx.addIssue({
          code: "custom",
          path: ["tiers", tierIndex, "minCost"],
          message: "the first tier must start at minCost 0 so every request has a tier",
        });
      }
      const previous = complexity.tiers[tierIndex - 1];
      if (previous !== undefined && tier.minCost <= previous.minCost) {
        ctx.addIssue({
          code: "custom",
          path: ["tiers", tierIndex, "minCost"],
          message: `tiers must be in strictly ascending minCost order (${tier.minCost} ≤ ${previous.minCost})`,
        });
      }
    });
    const { timeout } = complexity;
    if (timeout.floorMs > timeout.ceilingMs) {
      ctx.addIssue({
        code: "custom",
        path: ["timeout", "floorMs"],
        message: `floorMs (${timeout.floorMs}) exceeds ceilingMs (${timeout.ceilingMs})`,
      });
    }
    if (timeout.header !== "" && timeout.header === complexity.tierHeader) {
      ctx.addIssue({
        code: "custom",
        path: ["timeout", "header"],
        message: "timeout header and tierHeader must differ",
      });
    }
  })
  .prefault({});

export type ComplexityConfig = z.output<typeof complexityRouteSchema>;
export type CostWeights = ComplexityConfig["weights"];
export type TierConfig = ComplexityConfig["tiers"][number];
export type TimeoutConfig = ComplexityConfig["timeout"];
export type ModelConfig = ComplexityConfig["model"];
export type OutputConfig = ComplexityConfig["output"];
