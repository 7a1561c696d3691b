// Token usage and streamed-answer timing (the usage stage): one top-level section (label bounds) and
// one per-route section. On by default for every route: it only reads what passes (response headers,
// which the annotate stage asks Envoy for anyway by default, and the chunks of a streamed answer) and
// never asks Envoy to buffer a body unless `countBodies` says so.
import { z } from "zod";
import { headerName } from "../../config-kit/primitives.js";

const MIB = 1024 * 1024;

export const usageSchema = z
  .strictObject({
    /**
     * Distinct model versions (from each route's modelVersionHeader) kept as label values of
     * guard_tokens_total; later ones are "other". A version the contracts stage reported is used as
     * that stage bounded it.
     */
    maxModelVersions: z.number().int().min(1).max(1000).default(20),
  })
  .prefault({});

export const routeUsageSchema = z
  .strictObject({
    /** Count tokens and time streamed answers on this route. */
    enabled: z.boolean().default(true),
    /**
     * Have Envoy buffer every non-streamed 2xx response of the route so its JSON `usage` can be
     * counted. Off: a non-streamed body is counted only when another stage needed it whole anyway
     * (the cache storing it, a contract checking it), so counting costs no buffering.
     */
    countBodies: z.boolean().default(false),
    /** Larger non-streamed bodies are not parsed for their usage (parsing blocks the event loop). */
    maxBodyBytes: z
      .number()
      .int()
      .min(1)
      .default(1 * MIB),
    /** Response header naming the model version when the contracts stage reported none. */
    modelVersionHeader: headerName.default("x-model-version"),
  })
  .prefault({});

export type UsageConfig = z.output<typeof usageSchema>;
export type RouteUsageConfig = z.output<typeof routeUsageSchema>;
