// routes[].canary: a route served by a stable pool and candidate pools (Envoy clusters) during a
// model rollout. The guard picks the pool per request and names it in a header Envoy's route table
// matches (as it names the complexity tier), watches each candidate's answers and takes a candidate
// whose answers break the route's contract (or fail) out of traffic.
import { z } from "zod";
import { headerName, labelName } from "../../config-kit/primitives.js";
import { sharedRedisSchema } from "../../config-kit/redis.js";

/** The top-level section: what every rollout route shares. */
export const canarySchema = z
  .strictObject({
    /**
     * The shared Redis where the sidecars publish their candidates' counts and quarantines and read
     * the others': the health rule judges the fleet's answers, a quarantine decided by one sidecar
     * is adopted by all, a release on one releases it on all. Without one (url, cluster or sentinel) each sidecar decides alone.
     */
    redis: sharedRedisSchema("guard:canary:", {
      /** How often a sidecar publishes and reads (on a timer, never on the request path). */
      syncIntervalMs: z.number().int().min(100).max(1_000).default(500),
    }),
    /**
     * Envoy's listener as this guard reaches it (loopback in the pod: http://127.0.0.1:8080): the
     * shadow comparisons (routes[].canary.shadow) send their side requests through it, so Envoy's
     * route table picks the pool as for any request. Required when a route compares.
     */
    envoyUrl: z
      .url({ protocol: /^http$/, error: 'expected an http URL such as "http://127.0.0.1:8080"' })
      .transform((url) => url.replace(/\/+$/, ""))
      .optional(),
  })
  .prefault({});

export type CanaryConfig = z.output<typeof canarySchema>;

const candidateSchema = z.strictObject({
  /** The header value Envoy routes to this candidate's cluster; a metric label. */
  pool: labelName(40),
  /** Share of the route's requests, 0–1; the stable pool takes the rest. */
  weight: z.number().min(0).max(1),
});

/** The confidence levels a health rule may ask for (two-sided). */
export const CONFIDENCE_LEVELS = [0.9, 0.95, 0.99, 0.999] as const;
export type Confidence = (typeof CONFIDENCE_LEVELS)[number];

const healthSchema = z
  .strictObject({
    /** Answers of a candidate before any verdict: a few failures in a handful prove nothing. */
    minRequests: z.number().int().min(1).default(30),
    /**
     * Violations (or errors) before they can make a verdict. The rate is judged after every answer,
     * and a small count's interval is wide but not wide enough for that many looks: 2 violations
     * in the first 30 answers of a candidate as good as a stable version at 0.5% are past 1% "with
     * 95% confidence" in 5% of rollouts (bench/rollout.ts); 5 events make that 0.
     */
    minEvents: z.number().int().min(1).default(5),
    /** Largest tolerated share of a candidate's answers that break the contract. */
    maxViolationRate: z.number().min(0).max(1).default(0.01),
    /** Largest tolerated share of a candidate's answers that are 5xx from the upstream. */
    maxErrorRate: z.number().min(0).max(1).default(0.05),
    /**
     * Confidence that a rate is past its maximum before quarantine: the lower end of the rate's
     * Wilson score interval at this level must exceed the maximum.
     */
    confidence: z.union(CONFIDENCE_LEVELS.map((level) => z.literal(level))).default(0.95),
  })
  .prefault({});

const quarantineSchema = z
  .strictObject({
    /** Share of the route's requests a quarantined candidate still answers, so a fix shows. */
    probeRate: z.number().min(0).max(0.5).default(0.01),
    /**
     * Released on its own after this many probe answers in a row without a violation or error;
     * 0: only an operator releases it (POST /admin/canary/release).
     */
    autoReleaseAfter: z.number().int().min(0).default(0),
  })
  .prefault({});

/**
 * Shadow comparison: a sample of the stable pool's requests is sent again, after the client has its
 * answer, to the candidate and once more to the stable pool, and the answers are compared field by
 * field through the contract; the two stable answers tell each field's noise (shadow.ts).
 */
const shadowSchema = z.strictObject({
  /** The candidate compared (one of `candidates`; its weight may be 0: compared, never served). */
  pool: labelName(40),
  /** Share of the stable pool's answered requests that are compared. */
  sampleRate: z.number().min(0).max(1).default(0.05),
  /** Comparisons in flight (each is two side requests); a sample drawn beyond them is dropped. */
  maxConcurrent: z.number().int().min(1).max(64).default(4),
  /** A side request's longest wait for its whole answer; a late one is dropped, not compared. */
  timeoutMs: z.number().int().min(10).max(300_000).default(5_000),
  /** Two numbers agree when |a − b| ≤ absolute + relative × max(|a|, |b|). */
  numericTolerance: z
    .strictObject({
      absolute: z.number().min(0).default(0),
      relative: z.number().min(0).max(1).default(0),
    })
    .prefault({}),
  /**
   * A numeric difference counts only beyond this quantile of the stable-vs-stable differences of
   * the field (the noise), besides the tolerance.
   */
  noiseQuantile: z.number().min(0.5).max(1).default(0.99),
  /** The latest comparisons kept per field, for the candidate and for the noise. */
  window: z.number().int().min(10).max(10_000).default(1_000),
  /** Comparisons (and stable-vs-stable ones) before a field can be said to differ. */
  minComparisons: z.number().int().min(1).default(30),
  /**
   * Confidence that a field's candidate disagreement rate is above its noise's: the lower end of
   * the one's Wilson interval must exceed the upper end of the other's, plus `minDifference`.
   */
  confidence: z.union(CONFIDENCE_LEVELS.map((level) => z.literal(level))).default(0.95),
  /** The smallest difference of rates that counts, so a field 0.1% noisier is not a finding. */
  minDifference: z.number().min(0).max(1).default(0.05),
});

export const routeCanarySchema = z
  .strictObject({
    /** The request header the chosen pool is set in (removed from clients' requests by Envoy). */
    header: headerName.default("x-guard-pool"),
    /** The stable pool's header value. */
    stable: labelName(40),
    candidates: z.array(candidateSchema).min(1).max(8),
    /**
     * `tenant`: a tenant's requests go to the same pool (a conversation stays on one model
     * version); `none`: each request is drawn on its own.
     */
    sticky: z.enum(["tenant", "none"]).default("tenant"),
    health: healthSchema,
    quarantine: quarantineSchema,
    shadow: shadowSchema.optional(),
  })
  .superRefine((canary, context) => {
    const total = canary.candidates.reduce((sum, candidate) => sum + candidate.weight, 0);
    if (total > 1)
      context.addIssue({ code: "custom", path: ["candidates"], message: `weights add up to ${total}, more than 1` });
    const seen = new Set([canary.stable]);
    canary.candidates.forEach((candidate, index) => {
      if (seen.has(candidate.pool))
        context.addIssue({
          code: "custom",
          path: ["candidates", index, "pool"],
          message: `pool "${candidate.pool}" is named twice`,
        });
      seen.add(candidate.pool);
    });
    const shadow = canary.shadow?.pool;
    if (shadow !== undefined && !canary.candidates.some((candidate) => candidate.pool === shadow))
      context.addIssue({
        code: "custom",
        path: ["shadow", "pool"],
        message: `"${shadow}" is not one of the candidates (${canary.candidates.map((c) => c.pool).join(", ")}); give it weight 0 to compare it without serving it`,
      });
  });

export type RouteCanaryConfig = z.output<typeof routeCanarySchema>;
export type CanaryHealthConfig = RouteCanaryConfig["health"];
export type ShadowConfig = NonNullable<RouteCanaryConfig["shadow"]>;
