import { pino } from "pino";
import { Registry } from "prom-client";
import t from "tap";
import { canarySchema, routeCanarySchema } from "../../../../src/pipeline/canary/config.js";
import { CanaryStates, createCanaryStage } from "../../../../src/pipeline/canary/stage.js";
import type { Exchange, Outcome, StageRun } from "../../../../src/pipeline/types.js";
import { chatExchange } from "../../../helpers/exchange.js";
import { registryValue } from "../../../helpers/registry-metrics.js";

const UPSTREAM_OK: Outcome = { answeredBy: "upstream", status: 200, cancelled: false };

function setup(canary: Record<string, unknown> = {}, states?: CanaryStates) {
  const settings = routeCanarySchema.parse({
    stable: "v1",
    candidates: [{ pool: "v2", weight: 0.25 }],
    sticky: "none",
    ...canary,
  });
  const registry = new Registry();
  let draw = 0;
  const draws = [0.1, 0.5, 0.9, 0.3];
  const stage = createCanaryStage(
    { section: canarySchema.parse({}), routes: new Map([["sentiment", settings]]) },
    {
      registry,
      log: pino({ level: "silent" }),
      now: () => 0,
      // Draws cycle over four points: one of four (0.1) lands in v2's 0.25.
      random: () => draws[draw++ % draws.length] ?? 0,
      ...(states === undefined ? {} : { states }),
    },
  );
  const send = (values: Partial<Exchange> = {}): { exchange: Exchange; run: StageRun } => {
    const exchange = chatExchange({ route: { name: "sentiment" }, ...values });
    const run = stage.start(exchange);
    if (run === undefined) throw new Error("no run");
    return { exchange, run };
  };
  return { stage, registry, send };
}

t.test("a request goes to the pool its draw falls in, named in the header Envoy routes on", async (t) => {
  const { stage, send } = setup();
  const pools = Array.from({ length: 8 }, () => send().exchange.pool);
  t.same(pools, ["v2", "v1", "v1", "v1", "v2", "v1", "v1", "v1"]);
  const { run } = send();
  t.same(await run.onRequestHeaders?.(), {
    type: "continue",
    edits: { setHeaders: { "x-guard-pool": "v2" }, clearRouteCache: true },
    needs: { responseHeaders: true },
  });
  t.equal(stage.start(chatExchange({ route: { name: "chat" } })), undefined, "a route without a rollout");
});

t.test("a tenant stays on one pool; anonymous requests are drawn", async (t) => {
  const { send } = setup({ sticky: "tenant", candidates: [{ pool: "v2", weight: 0.5 }] });
  const poolOf = (tenant: string) => new Set(Array.from({ length: 6 }, () => send({ tenant }).exchange.pool));
  t.equal(poolOf("tenant-a").size, 1);
  t.equal(poolOf("tenant-b").size, 1);
  const tenants = Array.from({ length: 200 }, (_, i) => [...poolOf(`t${i}`)][0]);
  const onCandidate = tenants.filter((pool) => pool === "v2").length;
  t.ok(onCandidate > 70 && onCandidate < 130, `${onCandidate} of 200 tenants on the 50% candidate`);
  t.equal(poolOf("anonymous").size, 2, "anonymous requests follow the draws");
});

t.test("violations quarantine the candidate: its share drops to the probe rate, operators release it", async (t) => {
  const { stage, registry, send } = setup();
  let answered = 0;
  while (stage.status()[0]?.candidates[0]?.quarantine == null && answered < 1_000) {
    const { exchange, run } = send();
    if (exchange.pool !== "v2") {
      run.onEnd?.(UPSTREAM_OK);
      continue;
    }
    answered++;
    // Under enforce the guard answers 502 in the candidate's place; the contract verdict tells.
    exchange.contract = answered % 3 === 0 ? "violated" : "passed";
    run.onEnd?.(
      exchange.contract === "violated" ? { answeredBy: "guard", status: 502, cancelled: false } : UPSTREAM_OK,
    );
  }
  t.equal(answered, 30, "judged at minRequests: 10 violations in 30 are past 1% with confidence");
  const [route] = stage.status();
  t.match(route, {
    route: "sentiment",
    stable: "v1",
    candidates: [
      { pool: "v2", weight: 0.25, share: 0.01, quarantine: { reason: "violations", evidence: { answers: 30 } } },
    ],
  });
  t.equal(await registryValue(registry, "guard_canary_quarantined", { route: "sentiment", pool: "v2" }), 1);
  t.equal(await registryValue(registry, "guard_canary_share", { route: "sentiment", pool: "v2" }), 0.01);
  t.equal(await registryValue(registry, "guard_canary_quarantines_total", { pool: "v2", reason: "violations" }), 1);
  t.equal(await registryValue(registry, "guard_canary_answers_total", { pool: "v2", kind: "violated" }), 10);
  t.ok(((await registryValue(registry, "guard_canary_answers_total", { pool: "v1", kind: "ok" })) ?? 0) > 0);
  t.ok(
    Array.from({ length: 40 }, () => send().exchange.pool).every((pool) => pool === "v1"),
    "no draw of the cycle falls under the 1% probe share",
  );

  t.equal(stage.release("sentiment", "v2"), "released");
  t.equal(stage.release("sentiment", "v2"), "not_quarantined");
  t.equal(stage.release("sentiment", "v9"), "unknown");
  t.equal(stage.status()[0]?.candidates[0]?.share, 0.25);
});

t.test("what an answer says: a 5xx is an error, a shed or a cancelled one nothing", async (t) => {
  const { registry, send } = setup({ candidates: [{ pool: "v2", weight: 1 }] });
  const end = (outcome: Outcome) => send().run.onEnd?.(outcome);
  end({ answeredBy: "upstream", status: 503, cancelled: false });
  end({ answeredBy: "guard", status: 429, reason: "shed.overload", cancelled: false });
  end({ answeredBy: "upstream", status: 200, cancelled: true });
  end({ answeredBy: "guard", status: 200, reason: "cache.hit", cancelled: false });
  t.equal(await registryValue(registry, "guard_canary_answers_total", { pool: "v2", kind: "error" }), 1);
  t.equal(await registryValue(registry, "guard_canary_answers_total", { pool: "v2", kind: "ok" }), undefined);
});

t.test("a quarantine survives a rebuilt stage (reload) on the same states; a removed pool is forgotten", async (t) => {
  const states = new CanaryStates();
  const first = setup({ candidates: [{ pool: "v2", weight: 1 }] }, states);
  for (let i = 0; i < 30; i++) first.send().run.onEnd?.({ answeredBy: "upstream", status: 500, cancelled: false });
  t.ok(first.stage.status()[0]?.candidates[0]?.quarantine != null);
  const reloaded = setup({ candidates: [{ pool: "v2", weight: 0.5 }] }, states);
  t.match(reloaded.stage.status()[0]?.candidates[0], { weight: 0.5, share: 0.01, quarantine: { reason: "errors" } });
  const renamed = setup({ candidates: [{ pool: "v3", weight: 0.5 }] }, states);
  t.equal(renamed.stage.status()[0]?.candidates[0]?.quarantine, null);
  const back = setup({ candidates: [{ pool: "v2", weight: 0.5 }] }, states);
  t.equal(back.stage.status()[0]?.candidates[0]?.quarantine, null, "v2 was forgotten when removed");
});
