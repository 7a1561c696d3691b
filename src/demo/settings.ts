// The demo model's behaviour knobs. One schema serves the library options, the CLI flags and the
// runtime /__demo/config patch, so the three can never disagree on names, ranges or defaults.
import { z } from "zod";

/** Upper bound of every millisecond knob, and of the x-demo-*-ms headers that override one per request. */
export const MAX_DELAY_MS = 600_000;

const nonNegativeMs = z.number().finite().min(0).max(MAX_DELAY_MS);

const knobs = {
  /** Reported model version (x-model-version header, KServe model_version). */
  version: z.string().min(1).max(64),
  /** Which outputs the model gives: "v1" conforms, any other name is a break from the catalogue. */
  variant: z.string().min(1).max(64),
  baseLatencyMs: nonNegativeMs,
  /** Service time added per KiB of request body. */
  perKbMs: nonNegativeMs,
  /** Service time added per requested max_tokens, the decode cost of a generation. */
  perTokenMs: nonNegativeMs,
  /**
   * Streamed answers (SSE): delay between the response headers, sent at once, and the first event.
   * With interTokenMs also 0 every frame is written at once, as before pacing existed.
   */
  firstTokenMs: nonNegativeMs,
  /** Streamed answers (SSE): gap between one event and the next; `data: [DONE]` follows the last at once. */
  interTokenMs: nonNegativeMs,
  /** Requests served at once, like a continuous-batching GPU; 0 means unlimited and no slowdown. */
  capacity: z.number().int().min(0).max(100_000),
  /** With k of C slots busy, each request's service time is multiplied by 1 + batchPenalty·(k−1)/C. */
  batchPenalty: z.number().finite().min(0).max(100),
  /** Share of model requests answered 503, drawn from a seeded generator so runs repeat. */
  errorRate: z.number().min(0).max(1),
  seed: z.number().int(),
  /**
   * Non-determinism, as of a model that samples its answer: the eta task's eta_minutes moves by a
   * whole number of minutes up to ± this from one answer to the next (the same request included),
   * drawn from its own seeded generator (so the error draws stay as they were).
   */
  etaJitterMinutes: z.number().int().min(0).max(60),
};

export const demoOptionsSchema = z.strictObject({
  /** Name of the upstream pool this instance plays (light, heavy, ...); reported in a header only. */
  pool: z.string().min(1).max(64).default("default"),
  /** Larger bodies are refused with 413 instead of being buffered. */
  maxBodyBytes: z
    .number()
    .int()
    .min(1)
    .max(256 * 1024 * 1024)
    .default(16 * 1024 * 1024),
  version: knobs.version.default("v1"),
  variant: knobs.variant.default("v1"),
  baseLatencyMs: knobs.baseLatencyMs.default(0),
  perKbMs: knobs.perKbMs.default(0),
  perTokenMs: knobs.perTokenMs.default(0),
  firstTokenMs: knobs.firstTokenMs.default(0),
  interTokenMs: knobs.interTokenMs.default(0),
  capacity: knobs.capacity.default(0),
  batchPenalty: knobs.batchPenalty.default(0.5),
  errorRate: knobs.errorRate.default(0),
  seed: knobs.seed.default(1),
  etaJitterMinutes: knobs.etaJitterMinutes.default(0),
});

/**
 * What /__demo/config and configure() accept: any subset of the behaviour knobs, never the
 * identity (pool) or buffering limit. Built from the bare knobs because zod applies defaults
 * even inside .partial(), which would reset every knob the patch does not name.
 */
export const demoPatchSchema = z.strictObject(knobs).partial();

export type DemoOptions = z.input<typeof demoOptionsSchema>;
export type DemoSettings = z.output<typeof demoOptionsSchema>;

export type ConfigureResult =
  | { readonly ok: true; readonly settings: DemoSettings }
  | { readonly ok: false; readonly error: string };

export function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join(".") || "(root)"}: ${issue.message}`).join("; ");
}
