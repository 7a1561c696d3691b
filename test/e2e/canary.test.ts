// A model rollout through the real Envoy: the sentiment route's stable pool (v1) and a candidate
// (v2) whose scores break the contract (0–100 where 0–1 is promised). The guard names the pool in
// x-guard-pool, Envoy's route table sends each request there; the candidate's violations
// quarantine it after the health rule's minimum of answers, traffic moves to the stable pool but for
// the probe share, and an operator's release brings the candidate back.
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { parse, stringify } from "yaml";
import { metricSum } from "../../bench/metrics-text.js";
import { PROJECT_ROOT } from "../../src/devstack/envoy.js";
import { mapConcurrently, post, stackFor } from "../helpers/e2e.js";

// biome-ignore lint/suspicious/noExplicitAny: Envoy's config is walked by known paths; a wrong one throws
type Doc = Record<string, any>;

const SENTIMENT = "/v1/predict/sentiment";
const CANARY = { stable: "v1", candidates: [{ pool: "v2", weight: 0.3 }], sticky: "none" };
/** State-changing admin endpoints take the operator's token (docs/operations.md, "Admin API"). */
const ADMIN_TOKEN = "canary-e2e-admin-token";

/** docs/rollout.md's Envoy routes; the first is the candidate's. */
async function documentedRoutes(): Promise<Record<string, unknown>[]> {
  const text = await readFile(join(PROJECT_ROOT, "docs", "rollout.md"), "utf8");
  const block = /^```yaml envoy-routes\n([\s\S]*?)^```/m.exec(text)?.[1];
  if (block === undefined) throw new Error("docs/rollout.md: no envoy-routes block");
  return parse(block) as Record<string, unknown>[];
}

/**
 * Envoy's route table gains the documented candidate route, first, its cluster renamed to the heavy
 * demo pool (which serves v2).
 */
function routingThePool(candidateRoute: Record<string, unknown>): (yaml: string) => string {
  return (yaml) => {
    const config = parse(yaml) as { static_resources: { listeners: Doc[] } };
    const manager = config.static_resources.listeners[0]?.filter_chains[0].filters[0].typed_config;
    const routes = manager?.route_config.virtual_hosts[0].routes as unknown[] | undefined;
    if (routes === undefined) throw new Error("envoy.yaml: the route table moved");
    routes.unshift({ ...candidateRoute, route: { ...(candidateRoute.route as object), cluster: "model_heavy" } });
    return stringify(config);
  };
}

interface Answer {
  readonly status: number;
  readonly version: string | null;
  readonly reason: string | null;
}

t.test("a candidate breaking its contract is quarantined, then released by the operator", async (t) => {
  const [candidateRoute] = await documentedRoutes();
  if (candidateRoute === undefined) throw new Error("docs/rollout.md shows no route");
  const tokenFile = join(await mkdtemp(join(tmpdir(), "canary-e2e-")), "admin-token");
  await writeFile(tokenFile, `${ADMIN_TOKEN}\n`);
  const stack = await stackFor(t, {
    guardConfig: {
      admin: { tokenFile },
      routes: [
        {
          name: "sentiment",
          match: { pathPrefix: SENTIMENT, methods: ["POST"] },
          contract: { message: "demo.v1.Sentiment", action: "enforce" },
          canary: CANARY,
        },
      ],
    },
    editEnvoyConfig: routingThePool(candidateRoute),
    demoArgs: { heavy: ["--version", "v2", "--variant", "score_rescaled"] },
  });
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  let sent = 0;
  const send = async (count: number): Promise<Answer[]> =>
    mapConcurrently(Array.from({ length: count }), 4, async () => {
      const answer = await post(`${stack.url}${SENTIMENT}`, { text: `review number ${sent++} of the product` });
      return {
        status: answer.status,
        version: answer.headers.get("x-model-version"),
        reason: answer.headers.get("x-guard-reason"),
      };
    });
  const candidateAnswered = (answers: readonly Answer[]): number =>
    answers.filter((answer) => answer.version === "v2" || answer.reason === "contract.violated").length;

  const rollout = await send(200);
  const metrics = await guard.metrics();
  t.equal(metricSum(metrics, "guard_canary_quarantined", { route: "sentiment", pool: "v2" }), 1, "v2 quarantined");
  t.equal(metricSum(metrics, "guard_canary_quarantines_total", { pool: "v2", reason: "violations" }), 1);
  const judged = metricSum(metrics, "guard_canary_answers_total", { route: "sentiment", pool: "v2" });
  t.ok(judged >= 30 && judged <= 40, `v2 answered ${judged} requests: the rule's 30, and those in flight`);
  t.equal(
    rollout.filter((answer) => answer.status === 200 && answer.version === "v2").length,
    metricSum(metrics, "guard_canary_answers_total", { pool: "v2", kind: "ok" }),
    "no violating answer reached a client: each of v2's was withheld (enforce)",
  );
  t.ok(
    rollout.every((answer) => answer.status === 200 || answer.reason === "contract.violated"),
    "the stable pool answered everything else",
  );
  const status = (await (await fetch(`${guard.adminUrl}/api/canary`)).json()) as {
    routes: {
      candidates: { pool: string; share: number; quarantine?: { reason: string; evidence: { answers: number } } }[];
    }[];
  };
  t.match(status.routes[0]?.candidates[0], { pool: "v2", share: 0.01, quarantine: { reason: "violations" } });
  t.match(guard.process().output(), /"event":"canary_quarantine".*"pool":"v2"/, "a structured log event");

  const quarantined = await send(200);
  t.ok(
    candidateAnswered(quarantined) <= 10,
    `${candidateAnswered(quarantined)} of 200 requests probed v2 while quarantined (share 1%)`,
  );

  const release = (pool: string, token = ADMIN_TOKEN): Promise<Response> =>
    fetch(`${guard.adminUrl}/admin/canary/release?route=sentiment&pool=${pool}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
    });
  t.equal((await release("v2", "wrong")).status, 401, "only the operator releases");
  t.equal((await release("v9")).status, 404);
  t.same(await (await release("v2")).json(), { route: "sentiment", pool: "v2", result: "released" });
  const after = await send(100);
  t.ok(candidateAnswered(after) >= 10, `${candidateAnswered(after)} of 100 requests to v2 after the release`);
});
