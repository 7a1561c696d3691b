// Derives who a request is, once per exchange, before any stage runs: the tenant (a hash of the
// configured credential or verified attribute, never the raw value) and the priority class, from the
// sources the operator trusts only. A client's own class header is believed on routes that trust
// their clients; elsewhere it is ignored and counted, never an error (docs/admission.md).
import * as crypto from "node:crypto";
import { Counter, type Registry } from "prom-client";
import type { RequestInfo, StageConfig } from "../types.js";
import type { IdentityConfig, PriorityRule, RouteIdentityConfig } from "./config.js";
import { type Priority, parsePriority } from "./priority.js";

/** The tenant of requests that carry no tenant source: they share one tenant. */
export const ANONYMOUS_TENANT = "anonymous";

export interface Identity {
  /** A hash of the tenant source, or ANONYMOUS_TENANT. */
  readonly tenant: string;
  readonly priority: Priority;
}

/** Who the request is, on the route it matched (by name). */
export type Identify = (request: RequestInfo, route: string) => Identity;

/** Where the class came from: a metric label. */
type PrioritySource = "rule" | "client_header" | "route";

const DEFAULT_ROUTE: RouteIdentityConfig = { priority: "standard", trustClientPriority: false };

// The hash input is the one the cache keyed on before identity had a section of its own, so cached
// entries (shared through Redis between sidecar versions) keep their keys.
function hashTenant(raw: string): string {
  return crypto.hash("sha256", `tenant\0${raw}`, "base64url");
}

function matches(rule: PriorityRule, request: RequestInfo): boolean {
  const value =
    rule.attribute === undefined ? request.headers.get(rule.header ?? "") : request.attributes?.get(rule.attribute);
  if (value === undefined) return false;
  return rule.exact === undefined ? value.startsWith(rule.prefix ?? "") : value === rule.exact;
}

/** The request's tenant: its verified attribute when configured and present, else its header, hashed. */
export function tenantOf(request: RequestInfo, source: IdentityConfig["tenant"]): string {
  const attribute = source.attribute === undefined ? undefined : request.attributes?.get(source.attribute);
  if (attribute !== undefined && attribute !== "") return hashTenant(`attribute\0${attribute}`);
  const header = source.header === "" ? undefined : request.headers.get(source.header);
  return header === undefined || header === "" ? ANONYMOUS_TENANT : hashTenant(header);
}

export function createIdentify(config: StageConfig<IdentityConfig, RouteIdentityConfig>, registry: Registry): Identify {
  const { tenant, priority } = config.section;
  const registers = [registry];
  const classes = new Counter({
    name: "guard_identity_priority_total",
    help: "Requests by the priority class identity gave them and where it came from: rule (a verified source), client_header (a route that trusts its clients), route (the route's default class)",
    labelNames: ["route", "priority", "source"] as const,
    registers,
  });
  const ignored = new Counter({
    name: "guard_identity_ignored_total",
    help: "Client-sent priority classes not believed: untrusted_client_priority (the route does not trust its clients), unknown_priority (names no class)",
    labelNames: ["route", "reason"] as const,
    registers,
  });

  function priorityOf(request: RequestInfo, route: string): { priority: Priority; source: PrioritySource } {
    const rule = priority.rules.find((candidate) => matches(candidate, request));
    if (rule !== undefined) return { priority: rule.priority, source: "rule" };
    const routeConfig = config.routes.get(route) ?? DEFAULT_ROUTE;
    const claimed = request.headers.get(priority.header);
    if (claimed !== undefined) {
      const parsed = parsePriority(claimed);
      if (!routeConfig.trustClientPriority) ignored.inc({ route, reason: "untrusted_client_priority" });
      else if (parsed === undefined) ignored.inc({ route, reason: "unknown_priority" });
      else return { priority: parsed, source: "client_header" };
    }
    return { priority: routeConfig.priority, source: "route" };
  }

  return (request, route) => {
    const derived = priorityOf(request, route);
    classes.inc({ route, priority: derived.priority, source: derived.source });
    return { tenant: tenantOf(request, tenant), priority: derived.priority };
  };
}
