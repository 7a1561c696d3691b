// A rolling restart of the guard through the real Envoy 1.40: steady closed-loop load across a
// SIGTERM, in both failure modes. The promise: through drain.graceMs every request is served and
// guarded, including after Envoy's health check has marked the guard unhealthy (with one guard
// endpoint, Envoy's panic threshold routes to it anyway). What follows the grace is Envoy's
// failure_mode_allow with no guard at all, asserted as docs/operations.md describes it.
import { setTimeout as sleep } from "node:timers/promises";
import t, { type Test } from "tap";
import { defaultConfigWith, envoyStats, loggedAt, stackFor } from "../helpers/e2e.js";
import { chatShot, countBy, type Result, startLoad } from "../helpers/load.js";

const GRACE_MS = 7_000;
const TIMEOUT_MS = 10_000;
const CLIENTS = 20;
/** Only the guard adds it to an answer, in the response phase of an exchange it took. */
const GUARD_HEADER = "x-guard-route";

/**
 * Envoy health-checks a cluster that has carried no traffic every no_traffic_interval (60 s), and
 * keeps that timer once traffic starts: a fresh stack's guard would fail no check within the grace.
 * A guard in service for a minute is checked every interval (2 s); this makes the stack's so.
 */
function checkedEveryInterval(yaml: string): string {
  const edited = yaml.replace(/^(\s*)interval: 2s\n/m, "$1interval: 2s\n$1no_traffic_interval: 2s\n");
  if (edited === yaml) throw new Error("envoy.yaml: the inference_guard health check's interval moved");
  return edited;
}

interface ClusterSample {
  readonly at: number;
  readonly healthy: number;
  readonly panics: number;
}

const guarded = (result: Result): boolean => result.headers?.get(GUARD_HEADER) === "chat";
const outcome = (result: Result): string => `${result.status} ${guarded(result) ? "guarded" : "unguarded"}`;

async function rollingRestart(t: Test, failureModeAllow: boolean): Promise<void> {
  const stack = await stackFor(t, {
    failureModeAllow,
    guardConfig: await defaultConfigWith({
      drain: { graceMs: GRACE_MS, timeoutMs: TIMEOUT_MS },
      // A drain, not admission, is under test: on a busy CI host the cold limit shed a few of the
      // 20 clients' requests before SIGTERM, answers without the guard's route header.
      admission: { limit: { initial: 1e6, min: 1e6 } },
    }),
    editEnvoyConfig: checkedEveryInterval,
  });
  const guard = stack.guard?.process();
  if (guard === undefined) throw new Error("no guard");

  const samples: ClusterSample[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const stats = await envoyStats(
        stack.envoy.adminUrl,
        "^cluster\\.inference_guard\\.(membership_healthy|lb_healthy_panic)$",
      );
      samples.push({
        at: performance.now(),
        healthy: stats.get("cluster.inference_guard.membership_healthy") ?? Number.NaN,
        panics: stats.get("cluster.inference_guard.lb_healthy_panic") ?? Number.NaN,
      });
      await sleep(100);
    }
  })();

  // Unique prompts: every request is scored by the guard and goes to the model, none from the cache.
  const load = startLoad(stack.url, (index) => chatShot(index), CLIENTS, 8_000);
  while (load.results.length < 200) await sleep(50);
  const sigtermAt = performance.now();
  const exitCode = await guard.stop("SIGTERM", TIMEOUT_MS + 5_000);
  const exitedAt = performance.now();
  await sleep(1_000);
  const results = await load.stop();
  sampling = false;
  await sampler;

  const output = guard.output();
  const notReadyAt = loggedAt(output, "draining: not ready, still serving new streams");
  const refusingAt = loggedAt(output, "draining: refusing new streams");
  t.equal(exitCode, 0, "the guard exits 0 after the drain");
  t.match(output, /"forced":false,"graceCut":false,"msg":"drained"/, "no stream was cut");
  t.ok(notReadyAt - sigtermAt < 500, `not ready ${Math.round(notReadyAt - sigtermAt)} ms after SIGTERM`);
  t.ok(
    refusingAt - notReadyAt >= GRACE_MS - 5 && refusingAt - notReadyAt < GRACE_MS + 1_000,
    `new streams taken for ${Math.round(refusingAt - notReadyAt)} ms (drain.graceMs ${GRACE_MS})`,
  );

  const before = results.filter((result) => result.startedAt < sigtermAt);
  t.same(countBy(before, outcome), { "200 guarded": before.length }, "before SIGTERM: all served and guarded");

  const inGrace = results.filter((result) => result.startedAt >= sigtermAt && result.endedAt < refusingAt);
  t.ok(inGrace.length >= 200, `${inGrace.length} requests sent and answered within the grace`);
  t.same(countBy(inGrace, outcome), { "200 guarded": inGrace.length }, "grace: no failure, nothing unguarded");

  // What Envoy did while the guard reported NOT_SERVING: its only endpoint unhealthy, it routed to it anyway.
  const unhealthy = samples.find((sample) => sample.at > sigtermAt && sample.healthy === 0);
  t.ok(unhealthy !== undefined && unhealthy.at < refusingAt, "Envoy marked the guard unhealthy within the grace");
  const unhealthyAt = unhealthy?.at ?? Number.POSITIVE_INFINITY;
  const panicsInGrace =
    (samples.findLast((sample) => sample.at < refusingAt)?.panics ?? 0) -
    (samples.findLast((sample) => sample.at < sigtermAt)?.panics ?? 0);
  t.ok(panicsInGrace > 0, `Envoy load-balanced ${panicsInGrace} times in panic mode during the grace`);
  const afterUnhealthy = inGrace.filter((result) => result.startedAt > unhealthyAt);
  t.ok(
    afterUnhealthy.length >= 50 && afterUnhealthy.every(guarded),
    `${afterUnhealthy.length} requests sent after Envoy marked the guard unhealthy, all guarded`,
  );

  const closing = results.filter((result) => result.startedAt >= refusingAt - 100 && result.startedAt < exitedAt);
  t.comment(`from the end of the grace to the exit: ${JSON.stringify(countBy(closing, outcome))}`);

  // With no guard left: what a single-sidecar deployment sees until a new guard is up (in
  // Kubernetes the pod has left the endpoints by now).
  const gone = results.filter((result) => result.startedAt > exitedAt);
  t.ok(gone.length > 0, `${gone.length} requests sent after the guard exited`);
  t.same(
    countBy(gone, outcome),
    { [failureModeAllow ? "200 unguarded" : "500 unguarded"]: gone.length },
    failureModeAllow ? "guard gone: requests pass unguarded" : "guard gone: Envoy answers 500",
  );

  // Envoy's own count of requests it let through without the guard: exactly the answers without
  // the guard's header, so the header accounts for every unguarded request.
  const allowed = (await envoyStats(stack.envoy.adminUrl, "^http\\.inference\\.ext_proc\\.failure_mode_allowed$")).get(
    "http.inference.ext_proc.failure_mode_allowed",
  );
  t.equal(
    allowed,
    results.filter((result) => result.status === 200 && !guarded(result)).length,
    "Envoy's failure_mode_allowed equals the unguarded answers",
  );
}

t.test("SIGTERM under load, failure_mode_allow: false: the grace serves and guards every request", (t) =>
  rollingRestart(t, false),
);

t.test("SIGTERM under load, failure_mode_allow: true: nothing passes unguarded during the grace", (t) =>
  rollingRestart(t, true),
);
