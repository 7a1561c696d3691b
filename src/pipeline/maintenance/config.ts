// routes[].maintenance: takes a route out of service at the sidecar (a model being rolled back, a
// pool being drained): every request gets this answer instead of reaching the upstream.
import { z } from "zod";

export const maintenanceSchema = z.strictObject({
  status: z.number().int().min(400).max(599).default(503),
  retryAfterSeconds: z.number().int().min(0).max(86_400).default(60),
  message: z.string().max(500).default("This route is temporarily out of service."),
});

export type MaintenanceConfig = z.output<typeof maintenanceSchema>;
