// Admission control settings: the top-level `admission` section (shared by every pool) and the
// per-route `routes[].admission` switch. Defaults make an empty config protect the upstream with an
// adaptive budget; nothing here is a capacity number the operator has to guess.
import { z } from "zod";
import { headerName, labelName, movedKey } from "../../config-kit/primitives.js";

const ratio = z.number().gt(0).lte(1);

const limitSchema = z
  .strictObject({
    /** Budget (cost units in flight) before the first latency samples arrive. Small on purpose. */
    initial: z.number().positive().default(20),
    /** Floor of the budget: even a very slow upstream keeps serving this much. */
    min: z.number().positive().default(2),
    /** Safety ceiling of the budget (growth also needs the budget to be in use). */
    max: z.number().positive().default(1_000_000_000),
    /** Accepted slow-down under load: observed ÷ unloaded latency the limiter steers towards. */
    targetRatio: z.number().gt(1).lte(10).default(1.8),
    /** Largest growth factor per window once latency has reached the target once. */
    maxGrowth: z.number().gte(1).lte(2).default(1.02),
    /** Largest growth factor per window before that (slow start). */
    slowStartGrowth: z.number().gte(1).lte(4).default(1.2),
    /**
     * Exponent of the correction target ÷ smoothed ratio: 1 moves the limit the whole way each
     * window, smaller values damp it (0.5 halves the step on a log scale) so it settles at steady
     * load instead of swinging around the target.
     */
    gain: z.number().gt(0).lte(1).default(0.5),
    /** Smallest factor per window: the fastest backoff. */
    minGradient: z.number().gt(0).lte(1).default(0.8),
    /** EWMA weight of the newest window's latency ratio. */
    smoothing: ratio.default(0.3),
    /** A window closes after this long and at least minWindowSamples samples (and one smoothed latency). */
    minWindowMs: z.number().int().min(1).default(100),
    minWindowSamples: z.number().int().min(1).default(5),
    /** The budget only grows when at least this share of it was in use (no growth while idle). */
    growthUtilisation: ratio.default(0.5),
    /**
     * Latencies below this read as this (observed and predicted alike): a few ms is the noise of any
     * busy host, not a model's load. Without it, an upstream answering in ~1 ms on a loaded machine
     * read as 8× slowed down and the limit collapsed to one request.
     */
    noiseFloorMs: z.number().min(0.001).max(1_000).default(5),
    /**
     * Use the complexity stage's predicted latency for size normalisation when it is present. Off by
     * default: that model learns from every completion, loaded ones included, so its prediction
     * drifts with the load it should reveal, where the guard's own model learns from quiet requests
     * only (measured, make bench-shed: at 1× goodput ~30 % of capacity with it on, ~94 % off).
     */
    usePredictedLatency: z.boolean().default(false),
  })
  .prefault({});

function classSchema(defaults: { share: number; maxWaitMs: number; maxWaitLatencies: number; maxQueue: number }) {
  return z
    .strictObject({
      /** Share of the budget this class may fill (counting every class's in-flight cost). */
      share: ratio.default(defaults.share),
      /**
       * Longest time a request of this class may wait in the guard's queue; 0 disables queueing.
       * It waits this long while arrivals do not outpace completions (a burst at the upstream's
       * capacity, which drains), maxWaitLatencies round trips within it under overload. The
       * deadline the guard asks of Envoy covers it.
       */
      maxWaitMs: z.number().int().min(0).max(60_000).default(defaults.maxWaitMs),
      /**
       * The wait in units of the upstream's own recent latency, within maxWaitMs: a burst is worth
       * waiting out when a slot frees within about one round trip, whether the model answers in 50 ms
       * or 5 s. A fixed wait shorter than one round trip turned the bursts of traffic at exactly the
       * upstream's capacity into 429s (docs/bench.md, backoff@1x).
       */
      maxWaitLatencies: z.number().gt(0).max(1_000).default(defaults.maxWaitLatencies),
      /** Most requests of this class waiting at once. */
      maxQueue: z.number().int().min(0).max(100_000).default(defaults.maxQueue),
    })
    .prefault({});
}

const classesSchema = z
  .strictObject({
    critical: classSchema({ share: 1, maxWaitMs: 900, maxWaitLatencies: 4, maxQueue: 256 }),
    standard: classSchema({ share: 0.8, maxWaitMs: 600, maxWaitLatencies: 0.5, maxQueue: 256 }),
    sheddable: classSchema({ share: 0.6, maxWaitMs: 900, maxWaitLatencies: 1, maxQueue: 64 }),
  })
  .prefault({});

const circuitSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    /** Rolling window over which upstream failures are counted. */
    windowMs: z.number().int().min(100).default(10_000),
    /** Resolution of the rolling window. */
    buckets: z.number().int().min(1).max(600).default(10),
    /** Fewer upstream outcomes than this in the window never open the circuit. */
    minRequests: z.number().int().min(1).default(20),
    /** Failure share (5xx, timeouts) in the window that opens the circuit. */
    failureRatio: ratio.default(0.5),
    /** An upstream answer slower than this counts as a timeout failure. */
    slowCallMs: z.number().int().min(1).default(30_000),
    /** How long the circuit stays open before letting probes through. */
    openMs: z.number().int().min(1).default(5_000),
    /** Probes admitted while half-open; all must succeed to close, any failure re-opens. */
    halfOpenProbes: z.number().int().min(1).default(3),
  })
  .prefault({});

/** How a request header counts the client's earlier attempts at the same call. */
const retryHeaderSchema = z.strictObject({
  name: headerName,
  /** The header's value on a first attempt: 0 for a retry count, 1 for an attempt count. */
  firstAttempt: z.number().int().min(0).max(1),
});

const retriesSchema = z
  .strictObject({
    /**
     * Headers that mark a retry. The OpenAI SDKs send x-stainless-retry-count on every attempt; an
     * Envoy in front that retries sets x-envoy-attempt-count (with the route's
     * include_request_attempt_count). Empty: every request is a first attempt.
     */
    headers: z.array(retryHeaderSchema).default([
      { name: "x-stainless-retry-count", firstAttempt: 0 },
      { name: "x-envoy-attempt-count", firstAttempt: 1 },
    ]),
    /** Retries earned per first attempt admitted; a retry that would have to wait spends one. */
    ratio: z.number().min(0).max(10).default(0.2),
    /** Retries earned per second whatever the traffic, so a quiet domain still lets a few through. */
    minPerSecond: z.number().min(0).default(1),
    /** Most retries saved up. */
    burst: z.number().min(1).default(10),
  })
  .prefault({});

export const admissionSchema = z
  .strictObject({
    /** The class comes from identity (trusted sources only, once per request for every stage). */
    priorityHeader: movedKey("identity.priority.header (believed only on routes with identity.trustClientPriority)"),
    /** The tenant comes from identity, the same one the cache keys on. */
    tenantHeader: movedKey("identity.tenant.header"),
    /** Cost of a request the complexity stage did not price. */
    defaultCost: z.number().positive().default(1),
    /** Deficit round robin quantum in cost units (per tenant per round, within a class). */
    drrQuantum: z.number().positive().default(8),
    /**
     * Every request holds its cost plus requestWeight × the typical (smoothed mean) request cost of
     * the budget: 0 budgets pure size (a server limited by total work), large values approach a
     * request count (a server limited by slots, i.e. a max batch size). 4 keeps a slot-limited
     * server busy and costs a work-limited one little (docs/admission.md).
     */
    requestWeight: z.number().min(0).max(100).default(4),
    /** Ceiling of the Retry-After the guard advertises. */
    maxRetryAfterSeconds: z.number().int().min(1).max(3_600).default(30),
    /**
     * Spread of Retry-After: each answer advertises its wait × (1 + retryAfterJitter × a random
     * share), so clients shed in the same second do not all come back in the same second.
     */
    retryAfterJitter: z.number().min(0).max(2).default(0.5),
    /**
     * Longest a request holds its budget. A stream that never ends (a lost half-close, a peer that
     * went silent) would otherwise hold its share until the process restarts; beyond this it is
     * returned, counted, and the upstream is told nothing. Longer than any call a route allows.
     */
    maxHoldMs: z.number().int().min(1_000).max(86_400_000).default(600_000),
    retries: retriesSchema,
    limit: limitSchema,
    classes: classesSchema,
    circuit: circuitSchema,
  })
  .superRefine((admission, ctx) => {
    const { limit, classes } = admission;
    if (limit.min > limit.max) {
      ctx.addIssue({ code: "custom", path: ["limit", "min"], message: "limit.min exceeds limit.max" });
    }
    if (limit.initial < limit.min || limit.initial > limit.max) {
      ctx.addIssue({
        code: "custom",
        path: ["limit", "initial"],
        message: "limit.initial must lie within [limit.min, limit.max]",
      });
    }
    // Lower classes must shed first: a lower class may never use more of the budget than a higher one.
    if (classes.standard.share > classes.critical.share) {
      ctx.addIssue({
        code: "custom",
        path: ["classes", "standard", "share"],
        message: "must not exceed classes.critical.share",
      });
    }
    if (classes.sheddable.share > classes.standard.share) {
      ctx.addIssue({
        code: "custom",
        path: ["classes", "sheddable", "share"],
        message: "must not exceed classes.standard.share",
      });
    }
  })
  .prefault({});

export const routeAdmissionSchema = z
  .strictObject({
    /** Opt-in per route, like every stage: an empty config is pure pass-through. */
    enabled: z.boolean().default(false),
    /**
     * The admission domain: routes naming the same pool share one budget, queue and circuit breaker
     * (they reach one upstream). Absent: the route's own name, so a failing or slow model never
     * sheds another route's traffic; name a pool only to group routes served by one model server.
     */
    pool: labelName(40).optional(),
    /**
     * Each complexity tier of the route is its own domain, "<pool>/<tier>": heavy requests go to
     * their own cluster (envoy/envoy.yaml routes on the tier), whose health and capacity are its own.
     * False when every tier reaches the same upstream.
     */
    splitTiers: z.boolean().default(true),
  })
  .prefault({});

export type AdmissionConfig = z.output<typeof admissionSchema>;
export type LimitConfig = AdmissionConfig["limit"];
export type CircuitConfig = AdmissionConfig["circuit"];
export type ClassesConfig = AdmissionConfig["classes"];
export type RetriesConfig = AdmissionConfig["retries"];
export type RouteAdmissionConfig = z.output<typeof routeAdmissionSchema>;

/** Extra time asked of Envoy beyond a class's wait, so the guard's own timeout reply wins the race. */
export const DEADLINE_MARGIN_MS = 100;

export function longestClassWaitMs(classes: ClassesConfig): number {
  return Math.max(classes.critical.maxWaitMs, classes.standard.maxWaitMs, classes.sheddable.maxWaitMs);
}
