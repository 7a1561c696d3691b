// Answers for routes an operator took out of service, before any other stage spends work on them.
import type { GuardConfig, RouteConfig } from "../config/schema.js";
import { answerFormatFor, guardAnswer } from "./answers.js";
import type { Stage } from "./types.js";

type Maintenance = NonNullable<RouteConfig["maintenance"]>;

export function createMaintenanceStage(config: GuardConfig): Stage {
  const settings = new Map<string, Maintenance>();
  for (const route of config.routes) {
    if (route.maintenance !== undefined) settings.set(route.name, route.maintenance);
  }
  return {
    name: "maintenance",
    start(exchange) {
      const maintenance = settings.get(exchange.route.name);
      if (maintenance === undefined) return undefined;
      const { status, retryAfterSeconds, message } = maintenance;
      const reply = guardAnswer("route.maintenance", {
        format: answerFormatFor(exchange.request.path),
        status,
        detail: message,
        retryAfterSeconds,
        extensions: { route: exchange.route.name, retry_after_seconds: retryAfterSeconds },
      });
      return { onRequestHeaders: () => ({ type: "reply", reply }) };
    },
  };
}
