// Answers for routes an operator took out of service, before any other stage spends work on them.
import type { Reply, Stage } from "../types.js";
import type { MaintenanceConfig } from "./config.js";

/** `routes`: route name → its maintenance section, for the routes out of service. */
export function createMaintenanceStage(routes: ReadonlyMap<string, MaintenanceConfig>): Stage {
  const replies = new Map<string, Reply>();
  for (const [route, { status, retryAfterSeconds, message }] of routes) {
    replies.set(route, {
      status,
      headers: { "content-type": "application/json", "retry-after": String(retryAfterSeconds) },
      body: JSON.stringify({
        error: "route_in_maintenance",
        route,
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
