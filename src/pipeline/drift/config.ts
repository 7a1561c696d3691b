// Output drift per model version (docs/drift.md): one top-level section (memory and label bounds,
// default thresholds) and one per-route section (a pinned baseline, thresholds of that binding).
// A route is watched when it binds an output contract: the profiles come from the contract's
// schema, so the common case needs no configuration at all.
import { z } from "zod";
import { sharedRedisSchema } from "../../config-kit/redis.js";

/**
 * When a version's field counts as drifting. Scores above psi / jsDistance / wasserstein /
 * modeShareDelta / missingDelta drift; a variance ratio below varianceRatio is a collapse.
 */
const thresholdFields = {
  /** Population stability index (categorical shares, or numeric baseline-decile bins); 0.2 is the usual "significant shift". */
  psi: z.number().positive(),
  /** Jensen–Shannon distance, base 2, in [0, 1] (categorical fields). */
  jsDistance: z.number().positive().max(1),
  /** Wasserstein-1 distance divided by the baseline's 5–95 % range (numeric fields). */
  wasserstein: z.number().positive(),
  /** Variance of the version over that of the baseline (numeric fields): below it, the answers collapsed. */
  varianceRatio: z.number().positive().max(1),
  /** Rise of the share at the mode (largest category or sketch bucket) over the baseline's. */
  modeShareDelta: z.number().positive().max(1),
  /** Rise or fall of the share of answers where the field is missing, null or unreadable. */
  missingDelta: z.number().positive().max(1),
};

export const DEFAULT_THRESHOLDS = {
  psi: 0.2,
  jsDistance: 0.15,
  wasserstein: 0.25,
  varianceRatio: 0.1,
  modeShareDelta: 0.3,
  missingDelta: 0.1,
} as const;

export type DriftThresholds = { readonly [K in keyof typeof thresholdFields]: number };

export const driftSchema = z
  .strictObject({
    /** Profile the answers of contract-bound routes and score them against their baseline. */
    enabled: z.boolean().default(true),
    /** Model versions profiled per route; answers of later versions are not profiled (counted as dropped). */
    maxVersions: z.number().int().min(2).max(64).default(8),
    /** Fields profiled per contract, in schema order (nested messages flattened); later ones are not. */
    maxFields: z.number().int().min(1).max(128).default(24),
    /** Distinct values kept per categorical field (enum and `in` lists are bounded by the schema); later ones count as "other". */
    maxCategories: z.number().int().min(2).max(1024).default(64),
    /** Relative accuracy of the quantile sketches (DDSketch); finer costs buckets (docs/drift.md, "Memory"). */
    relativeAccuracy: z.number().min(0.001).max(0.1).default(0.02),
    /** Answers a version and its baseline each need before any verdict: fewer is "insufficient data". */
    minSamples: z.number().int().min(10).default(200),
    /** Trailing window over which the version with most traffic becomes a route's baseline. */
    baselineWindowMs: z.number().int().min(1_000).default(3_600_000),
    /** Drifting fields listed per version in /api/status, worst first. */
    topFields: z.number().int().min(1).max(32).default(3),
    /**
     * The shared Redis where every sidecar publishes its profiles and reads the others', so each
     * reports the fleet-wide picture; without one (url, cluster or sentinel) each sidecar reports its own answers alone.
     */
    redis: sharedRedisSchema("guard:drift:", {
      /** How often a sidecar publishes its profiles and reads the others' (on an answer, no timer). */
      syncIntervalMs: z.number().int().min(100).max(600_000).default(10_000),
    }),
    thresholds: z
      .strictObject({
        psi: thresholdFields.psi.default(DEFAULT_THRESHOLDS.psi),
        jsDistance: thresholdFields.jsDistance.default(DEFAULT_THRESHOLDS.jsDistance),
        wasserstein: thresholdFields.wasserstein.default(DEFAULT_THRESHOLDS.wasserstein),
        varianceRatio: thresholdFields.varianceRatio.default(DEFAULT_THRESHOLDS.varianceRatio),
        modeShareDelta: thresholdFields.modeShareDelta.default(DEFAULT_THRESHOLDS.modeShareDelta),
        missingDelta: thresholdFields.missingDelta.default(DEFAULT_THRESHOLDS.missingDelta),
      })
      .prefault({}),
  })
  .prefault({});

export const routeDriftSchema = z
  .strictObject({
    /** Compare every version against this one; absent: the version with most traffic in baselineWindowMs. */
    baselineVersion: z.string().min(1).max(64).optional(),
    /** This binding's thresholds; each one absent takes drift.thresholds'. */
    thresholds: z.strictObject(thresholdFields).partial().default({}),
  })
  .prefault({});

export type DriftConfig = z.output<typeof driftSchema>;
export type RouteDriftConfig = z.output<typeof routeDriftSchema>;
