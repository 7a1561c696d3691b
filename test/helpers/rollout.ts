// Rollout e2e tests run docs/rollout.md's Envoy routes in the real Envoy: a fenced block of the
// doc, parsed, and its route put first in the route table, its cluster renamed to the heavy demo
// pool (which plays the candidate).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { PROJECT_ROOT } from "../../src/devstack/envoy.js";

// biome-ignore lint/suspicious/noExplicitAny: Envoy's config is walked by known paths; a wrong one throws
type Doc = Record<string, any>;

/** The routes of docs/rollout.md's block fenced as ```yaml <name>. */
export async function documentedRoutes(name: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(join(PROJECT_ROOT, "docs", "rollout.md"), "utf8");
  const block = new RegExp(`^\`\`\`yaml ${name}\\n([\\s\\S]*?)^\`\`\``, "m").exec(text)?.[1];
  if (block === undefined) throw new Error(`docs/rollout.md: no ${name} block`);
  return parse(block) as Record<string, unknown>[];
}

/** Envoy's route table gains `candidateRoute`, first, its cluster renamed to the heavy demo pool. */
export function routingThePool(candidateRoute: Record<string, unknown>): (yaml: string) => string {
  return (yaml) => {
    const config = parse(yaml) as { static_resources: { listeners: Doc[] } };
    const manager = config.static_resources.listeners[0]?.filter_chains[0].filters[0].typed_config;
    const routes = manager?.route_config.virtual_hosts[0].routes as unknown[] | undefined;
    if (routes === undefined) throw new Error("envoy.yaml: the route table moved");
    routes.unshift({ ...candidateRoute, route: { ...(candidateRoute.route as object), cluster: "model_heavy" } });
    return stringify(config);
  };
}
