// The connection settings every stage that shares state through Redis takes (the cache, the tenant
// budgets): one shape, documented once.
import { z } from "zod";

/** url, timeoutMs, keyPrefix (defaulting to the stage's own), probeIntervalMs. */
export function sharedRedisFields(keyPrefix: string) {
  return {
    /** redis:// or rediss:// URL; absent means no shared tier (each sidecar keeps its own state). */
    url: z
      .string()
      .regex(/^rediss?:\/\/.+/, { message: 'expected a "redis://" or "rediss://" URL' })
      .optional(),
    /** Longest a call may wait for Redis before the stage goes on with its in-process state alone. */
    timeoutMs: z.number().int().min(1).max(1_000).default(30),
    /** Prefix of every key the guard writes, so several services can share one Redis. */
    keyPrefix: z.string().min(1).max(64).default(keyPrefix),
    /** While Redis is known down, calls are skipped; one probe is let through this often. */
    probeIntervalMs: z.number().int().min(10).max(60_000).default(1_000),
  };
}
