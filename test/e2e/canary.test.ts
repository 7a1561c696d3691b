// A model rollout through the real Envoy: the sentiment route's stable pool (v1) and a candidate
// (v2) whose scores break the contract (0–100 where 0–1 is promised). The guard names the pool in
// x-guard-pool, Envoy's route table sends each request there; the candidate's violations
// quarantine it after the health rule's minimum of answers, traffic moves to the stable pool but for
// the probe share, and an operator's release brings the candidate back. Two sidecars sharing a
// redis-server (canary.redis) follow each other's quarantine and release.
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import t, { type Test } from "tap";
import { metricSum } from "../../bench/metrics-text.js";
import type { Stack } from "../../src/devstack/stack.js";
import type { CandidateStatus } from "../../src/pipeline/canary/stage.js";
import type { StatusReport } from "../../src/server/status/report.js";
import { mapConcurrently, post, stackFor } from "../helpers/e2e.js";
import { startRedis } from "../helpers/redis.js";
import { documentedRoutes, routingThePool } from "../helpers/rollout.js";

const SENTIMENT = "/v1/predict/sentiment";
const CANARY = { stable: "v1", candidates: [{ pool: "v2", weight: 0.3 }], sticky: "none" };
/** State-changing admin endpoints take the operator's token (docs/operations.md, "Admin API"). */
const ADMIN_TOKEN = "canary-e2e-admin-token";

interface Answer {
  readonly status: number;
  readonly version: string | null;
  readonly reason: string | null;
}

/** The sentiment route in rollout behind the real Envoy, v2 on the heavy pool breaking the contract. */
async function rolloutStack(t: Test, sections: Record<string, unknown> = {}): Promise<Stack> {
  // docs/rollout.md's Envoy routes; the first is the candidate's.
  const [candidateRoute] = await documentedRoutes("envoy-routes");
  if (candidateRoute === undefined) throw new Error("docs/rollout.md shows no route");
  const tokenFile = join(await mkdtemp(join(tmpdir(), "canary-e2e-")), "admin-token");
  await writeFile(tokenFile, `${ADMIN_TOKEN}\n`);
  return stackFor(t, {
    guardConfig: {
      ...sections,
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
}

let sent = 0;
async function send(stack: Stack, count: number): Promise<Answer[]> {
  return mapConcurrently(Array.from({ length: count }), 4, async () => {
    const answer = await post(`${stack.url}${SENTIMENT}`, { text: `review number ${sent++} of the product` });
    return {
      status: answer.status,
      version: answer.headers.get("x-model-version"),
      reason: answer.headers.get("x-guard-reason"),
    };
  });
}

function candidateAnswered(answers: readonly Answer[]): number {
  return answers.filter((answer) => answer.version === "v2" || answer.reason === "contract.violated").length;
}

function adminUrlOf(stack: Stack): string {
  const url = stack.guard?.adminUrl;
  if (url === undefined) throw new Error("no guard");
  return url;
}

function release(stack: Stack, pool: string, token = ADMIN_TOKEN): Promise<Response> {
  return fetch(`${adminUrlOf(stack)}/admin/canary/release?route=sentiment&pool=${pool}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
  });
}

/** v2 as the sidecar's status page reports it (/api/status, rollouts). */
async function v2Of(stack: Stack): Promise<CandidateStatus | undefined> {
  const status = (await (await fetch(`${adminUrlOf(stack)}/api/status`)).json()) as StatusReport;
  return status.rollouts.find((rollout) => rollout.route === "sentiment")?.candidates[0];
}

t.test("a candidate breaking its contract is quarantined, then released by the operator", async (t) => {
  const stack = await rolloutStack(t);
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  const rollout = await send(stack, 200);
  const metrics = await guard.metrics();
  t.equal(metricSum(metrics, "guard_canary_quarantined", { route: "sentiment", pool: "v2" }), 1, "v2 quarantined");
  t.equal(
    metricSum(metrics, "guard_canary_quarantines_total", { pool: "v2", reason: "violations", source: "local" }),
    1,
  );
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

  const quarantined = await send(stack, 200);
  t.ok(
    candidateAnswered(quarantined) <= 10,
    `${candidateAnswered(quarantined)} of 200 requests probed v2 while quarantined (share 1%)`,
  );

  t.equal((await release(stack, "v2", "wrong")).status, 401, "only the operator releases");
  t.equal((await release(stack, "v9")).status, 404);
  t.same(await (await release(stack, "v2")).json(), { route: "sentiment", pool: "v2", result: "released" });
  const after = await send(stack, 100);
  t.ok(candidateAnswered(after) >= 10, `${candidateAnswered(after)} of 100 requests to v2 after the release`);
});

t.test("two sidecars sharing Redis: one's quarantine is the other's within a second, so is a release", async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  // The default sync interval (500 ms): the follow time measured is the one deployments get.
  const sections = { canary: { redis: { url: redis.url } } };
  const [first, second] = await Promise.all([rolloutStack(t, sections), rolloutStack(t, sections)]);

  // Only the first sidecar's clients meet v2; both are watched meanwhile, every 20 ms.
  const seen: { first?: number; second?: number } = {};
  let sending = true;
  const watching = (async () => {
    while (sending || seen.second === undefined) {
      const [mine, theirs] = await Promise.all([v2Of(first), v2Of(second)]);
      const now = performance.now();
      if (mine?.quarantine != null) seen.first ??= now;
      if (theirs?.quarantine != null) seen.second ??= now;
      if (!sending && now - (seen.first ?? 0) > 5_000) break;
      await sleep(20);
    }
  })();
  await send(first, 200);
  sending = false;
  await watching;
  t.ok(seen.first !== undefined, "the first sidecar quarantined v2");
  const followMs = Math.round((seen.second ?? Number.POSITIVE_INFINITY) - (seen.first ?? 0));
  t.ok(followMs < 1_000, `the second sidecar followed ${followMs} ms after the first quarantined v2`);
  t.match(await v2Of(second), {
    share: 0.01,
    ownWindow: { answers: 0 },
    quarantine: { source: "fleet", reason: "violations", evidence: { answers: 30 } },
  });
  const metrics = await second.guard?.metrics();
  t.equal(metricSum(metrics ?? "", "guard_canary_quarantines_total", { pool: "v2", source: "fleet" }), 1);
  t.equal(metricSum(metrics ?? "", "guard_canary_redis_up", {}), 1);
  const page = await (await fetch(`${adminUrlOf(second)}/`)).text();
  t.match(page, /id="quarantined"[^>]*>Quarantined, out of traffic but for probes: v2 of sentiment/);
  const probed = await send(second, 200);
  t.ok(candidateAnswered(probed) <= 10, `${candidateAnswered(probed)} of 200 requests probed v2 on the second sidecar`);

  t.same(await (await release(second, "v2")).json(), { route: "sentiment", pool: "v2", result: "released" });
  const released = performance.now();
  while ((await v2Of(first))?.quarantine != null && performance.now() - released < 5_000) await sleep(20);
  const releaseMs = Math.round(performance.now() - released);
  t.ok(releaseMs < 1_000, `the first sidecar released v2 ${releaseMs} ms after the operator's release on the second`);
  const after = await send(first, 100);
  t.ok(
    candidateAnswered(after) >= 10,
    `${candidateAnswered(after)} of 100 requests to v2 on the first after the release`,
  );
});
