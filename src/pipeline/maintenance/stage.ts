// Answers for routes an operator took out of service, before any other stage spends work on them.
import { answerFormatFor, guardAnswer } from "../answers.js";
import type { Stage } from "../types.js";
import type { MaintenanceConfig } from "./config.js";

/** `routes`: route name → its maintenance section, for the routes out of service. */
export function createMaintenanceStage(routes: ReadonlyMap<string, MaintenanceConfig>): Stage {
  return {
    name: "maintenance",
    start(exchange) {
      const maintenance = routes.get(exchange.route.name);
      if (maintenance === undefined) return undefined;
      const { status, retryAfterSeconds, message } = maintenance;
      const reply = guardAnswer("route.maintenance", {
        format: answerFormatFor(exchange.request.path),
        status,
        detail: message,
        retryAfterMs: retryAfterSeconds * 1_000,
        extensions: { route: exchange.route.name, retry_after_seconds: retryAfterSeconds },
      });
      return { onRequestHeaders: () => ({ type: "reply", reply }) };
    },
  };
}
