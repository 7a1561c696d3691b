// routes[].budget: per-tenant request and token budgets per minute, as AI gateways sell them. The
// tenant is the one identity derived for the exchange; routes naming the same pool share a tenant's
// budget (chat and responses of one model, say).
import { z } from "zod";
import { labelName } from "../../config-kit/primitives.js";
import { sharedRedisSchema } from "../../config-kit/redis.js";

/** The top-level `budget` section: where tenants' budgets are shared between sidecars. */
export const budgetSchema = z
  .strictObject({
    /** No url, cluster or sentinel: each sidecar counts alone. */
    redis: sharedRedisSchema("guard:budget:", {}),
  })
  .prefault({});

export type BudgetConfig = z.output<typeof budgetSchema>;

export const routeBudgetSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    /** Requests a tenant may send per minute (sliding window); absent: not limited. */
    requestsPerMinute: z.number().int().positive().optional(),
    /**
     * Tokens a tenant may use per minute: prompt tokens as the complexity stage estimated them,
     * plus the completion tokens the upstream reported (the estimate where it reported none).
     * Absent: not limited.
     */
    tokensPerMinute: z.number().int().positive().optional(),
    /** Routes naming the same pool count against one budget per tenant. Absent: the route's own name. */
    pool: labelName(40).optional(),
  })
  .superRefine((budget, ctx) => {
    if (budget.enabled && budget.requestsPerMinute === undefined && budget.tokensPerMinute === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["enabled"],
        message: "an enabled budget needs requestsPerMinute or tokensPerMinute",
      });
  })
  .prefault({});

export type RouteBudgetConfig = z.output<typeof routeBudgetSchema>;
