// Response cache configuration: one top-level section (memory bound, optional shared Redis tier)
// and one per-route section (what is cacheable on that route and for how long).
import { z } from "zod";
import { headerName, movedKey, optionalHeaderName } from "../../config-kit/primitives.js";
import { sharedRedisSchema } from "../../config-kit/redis.js";

const MIB = 1024 * 1024;

/** Headers the cache sets itself on a hit; storing upstream copies of them would be ambiguous. */
export const CACHE_OWNED_HEADERS: readonly string[] = [
  "x-guard-cache",
  "x-guard-cache-tier",
  "x-guard-cache-reason",
  "age",
];

/**
 * Request fields that change the form of the answer (an event stream or one JSON document, usage
 * chunks or not): excluding them from the key would let one form answer a request for the other.
 */
export const KEYED_FIELDS: readonly string[] = ["stream", "stream_options"];

const redisSchema = sharedRedisSchema("guard:cache:", {
  /** How stale this sidecar's view of another sidecar's epoch change (model version, purge) may be. */
  epochRefreshMs: z.number().int().min(10).max(60_000).default(1_000),
});

export const cacheSettingsSchema = z
  .strictObject({
    /** Bytes the in-process tier may hold across all routes (bodies, headers and keys). */
    maxBytes: z
      .number()
      .int()
      .min(1024)
      .default(64 * MIB),
    redis: redisSchema,
  })
  .prefault({});

export const routeCacheSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    ttlSeconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 24 * 3600)
      .default(300),
    /** Larger responses are passed through and not stored. */
    maxEntryBytes: z
      .number()
      .int()
      .min(1)
      .default(1 * MIB),
    /** Top-level JSON body fields that cannot change the output, left out of the key (never KEYED_FIELDS). */
    excludeFields: z.array(z.string().min(1)).default(["user", "metadata"]),
    /** Tenants are separated by identity's tenant, the one admission's fairness uses too. */
    tenantHeader: movedKey("identity.tenant.header (one tenant source for every route and stage)"),
    /** Request headers that select a different representation and so belong in the key. */
    varyHeaders: z.array(headerName).default(["accept-encoding"]),
    /** Response headers stored and replayed on a hit; everything else is dropped. */
    allowHeaders: z.array(headerName).default(["content-type", "content-encoding", "x-model-version"]),
    /** Response header naming the model version when no contract stage reported one. */
    versionHeader: headerName.default("x-model-version"),
    /** Request header a client sets to "allow" to cache a request that is not provably deterministic; "" disables. */
    optInHeader: optionalHeaderName.default("x-guard-cache"),
    /** How long identical concurrent misses wait for the first one's response; 0 disables coalescing. */
    singleFlightWaitMs: z.number().int().min(0).max(120_000).default(5_000),
    /**
     * Mark uncacheable requests with x-guard-cache: bypass and x-guard-cache-reason. Costs one
     * more ext_proc round trip (response headers) for those requests.
     */
    annotateBypass: z.boolean().default(true),
  })
  .superRefine((route, ctx) => {
    if (!route.enabled) return;
    route.allowHeaders.forEach((header, index) => {
      if (CACHE_OWNED_HEADERS.includes(header)) {
        ctx.addIssue({
          code: "custom",
          path: ["allowHeaders", index],
          message: `"${header}" is set by the cache itself on a hit`,
        });
      }
    });
    route.excludeFields.forEach((field, index) => {
      if (KEYED_FIELDS.includes(field)) {
        ctx.addIssue({
          code: "custom",
          path: ["excludeFields", index],
          message: `"${field}" selects the form of the answer (event stream or JSON) and must stay in the key`,
        });
      }
    });
  })
  .prefault({});

export type CacheSettings = z.output<typeof cacheSettingsSchema>;
export type RouteCacheConfig = z.output<typeof routeCacheSchema>;
