// Answers for routes an operator took out of service, before any other stage spends work on them.
import type { GuardConfig } from "../config/schema.js";
import type { Reply, Stage } from "./types.js";

export function createMaintenanceStage(config: GuardConfig): Stage {
  const replies = new Map<string, Reply>();
  for (const route of config.routes) {
    if (route.maintenance === undefined) continue;
    const { status, retryAfterSeconds, message } = route.maintenance;
    replies.set(route.name, {
      status,
      headers: { "content-type": "application/json", "retry-after": String(retryAfterSeconds) },
      body: JSON.stringify({
        error: "route_in_maintenance",
        route: route.name,
        message,
        retry_after_seconds: retryAfterSeconds,
      }),
      reason: "route.maintenance",
    });
  }
  return {
    name: "maintenance",
    start(exchange) {
      const reply = replies.get(exchange.route.name);
      return reply === undefined ? undefined : { onRequestHeaders: () => ({ type: "reply", reply }) };
    },
  };
}
