// A pod of the shipped Deployment (deploy/kubernetes) leaving under load, in the order Kubernetes
// terminates it: the pod is deleted, its endpoints start to go, Envoy runs its preStop sleep while
// the guard (no preStop) gets SIGTERM at once; senders keep arriving until endpoint removal has
// reached them; Envoy gets SIGTERM when its preStop ends; whatever is left is killed at
// terminationGracePeriodSeconds. The pod's own Envoy config, guard config and contracts run, only
// their addresses moved to loopback. The promise: every request the pod took was answered and
// guarded, none went through without the guard, and both processes ended before the kill.
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import t from "tap";
import { parse } from "yaml";
import { KUBERNETES_ENVOY_FILE, kubernetesEnvoyOnLoopback } from "../../src/devstack/deploy-configs.js";
import { envoyStats, loggedAt, stackFor } from "../helpers/e2e.js";
import { type Doc, docs, find, K8S } from "../helpers/kubernetes.js";
import { chatShot, countBy, type Result, type Shot, startLoad } from "../helpers/load.js";

const PER_TOKEN_MS = 5;

async function manifest(file: string, kind: string, name: string): Promise<Doc> {
  return find(await docs(join(K8S, file)), kind, name);
}

/** The pod's termination timings, as the Deployment sets them. */
async function podTimings(): Promise<{ preStopMs: number; gracePeriodMs: number }> {
  const pod = (await manifest("deployment.yaml", "Deployment", "inference-guard")).spec.template.spec as Doc;
  const envoy = (pod.containers as Doc[]).find((container) => container.name === "envoy");
  const guard = (pod.containers as Doc[]).find((container) => container.name === "guard");
  if (guard?.lifecycle?.preStop !== undefined) throw new Error("the guard gained a preStop: this test assumes none");
  const [command, seconds] = (envoy?.lifecycle?.preStop?.exec?.command ?? []) as string[];
  if (command !== "/bin/sleep") throw new Error(`Envoy's preStop is no longer a sleep: ${command}`);
  return { preStopMs: Number(seconds) * 1000, gracePeriodMs: Number(pod.terminationGracePeriodSeconds) * 1000 };
}

/**
 * The ConfigMap's guard config with its contracts written beside it. What names a place in the
 * cluster goes: the listen addresses and Envoy's admin (the stack puts its own), the trace collector
 * (a cluster Service; no tracing here).
 */
async function podGuardConfig(): Promise<Record<string, unknown>> {
  const config = parse((await manifest("guard-config.yaml", "ConfigMap", "inference-guard-config")).data["guard.yaml"]);
  const contracts = (await manifest("guard-contracts.yaml", "ConfigMap", "inference-guard-contracts")).data as Record<
    string,
    string
  >;
  const dir = await mkdtemp(join(tmpdir(), "guard-contracts-"));
  for (const [name, text] of Object.entries(contracts)) await writeFile(join(dir, name), text);
  delete config.listen;
  delete config.envoy.adminUrl;
  delete config.tracing;
  config.contracts.protoPaths = [dir];
  return config;
}

/** Only the guard adds these: its route on answers it saw through, its reason on answers it made. */
const guarded = (result: Result): boolean =>
  result.headers?.get("x-guard-route") === "chat" || result.headers?.has("x-guard-reason") === true;
const outcome = (result: Result): string =>
  result.status === "error"
    ? `error ${result.error ?? ""}`
    : `${result.status} ${guarded(result) ? "guarded" : "unguarded"}${result.headers?.has("x-guard-reason") ? ` ${result.headers.get("x-guard-reason")}` : ""}`;

t.test("a shipped pod terminating under load: every request it took is answered and guarded", async (t) => {
  const { preStopMs, gracePeriodMs } = await podTimings();
  const guardConfig = await podGuardConfig();
  const drain = guardConfig.drain as { graceMs: number; timeoutMs: number };
  /**
   * When endpoint removal has reached the last sender: the latest the pod is built for (its preStop
   * sleep exists to cover this lag), less the time the slowest request takes to finish.
   */
  const SLOW_MS = 1_500;
  const lastSenderMs = preStopMs - SLOW_MS - 500;

  const kubernetes = await readFile(KUBERNETES_ENVOY_FILE, "utf8");
  const stack = await stackFor(t, {
    transport: "uds",
    renderEnvoyConfig: (values) => kubernetesEnvoyOnLoopback(kubernetes, values),
    guardConfig,
    demoArgs: { light: ["--per-token-ms", String(PER_TOKEN_MS)], heavy: ["--per-token-ms", String(PER_TOKEN_MS)] },
  });
  const guard = stack.guard?.process();
  if (guard === undefined) throw new Error("no guard");

  // Quick requests and streamed ones that last SLOW_MS, so some are in flight at every step. The
  // model's time grows with the tokens asked, as a real one's does, which admission prices.
  const shot = (index: number): Shot =>
    index % 5 === 0 ? sized(index, SLOW_MS / PER_TOKEN_MS, true) : sized(index, 20, false);
  const load = startLoad(stack.url, shot, 10, 10_000);
  while (load.results.length < 100) await sleep(50);

  // The kubelet: SIGTERM to the container without a preStop, the preStop of the other, SIGTERM to
  // it when the hook ends, SIGKILL to both at the end of the grace period.
  const deletedAt = performance.now();
  const guardExit = guard.stop("SIGTERM", gracePeriodMs).then((code) => ({ code, at: performance.now() }));
  const envoyExit = sleep(preStopMs).then(async () => {
    const stoppedAt = performance.now();
    const code = await stack.envoy.process.stop("SIGTERM", gracePeriodMs - (stoppedAt - deletedAt));
    return { code, stoppedAt, at: performance.now() };
  });
  const notReadyAfterMs = await notReadyWithin(`${stack.guard?.adminUrl}/readyz`, 1_000);

  await sleep(lastSenderMs);
  const results = await load.stop();
  const unguarded = await envoyStats(
    stack.envoy.adminUrl,
    "^http\\.inference\\.ext_proc\\.(failure_mode_allowed|message_timeouts|streams_failed)$",
  );
  const envoyExited = await envoyExit;
  const guardExited = await guardExit;

  t.ok(notReadyAfterMs !== undefined, `/readyz answered 503 ${notReadyAfterMs?.toFixed(0)} ms after SIGTERM`);
  t.ok(
    results.at(-1) !== undefined && Math.max(...results.map((result) => result.endedAt)) < envoyExited.stoppedAt,
    "the last request ended before Envoy's preStop did",
  );
  t.same(
    countBy(results, outcome),
    { "200 guarded": results.filter((result) => result.status === 200).length, ...sheds(results) },
    "every request was answered by the model through the guard, or by the guard itself",
  );
  const afterSigterm = results.filter((result) => result.startedAt > deletedAt);
  const acrossSigterm = results.filter((result) => result.startedAt < deletedAt && result.endedAt > deletedAt);
  t.ok(afterSigterm.length >= 100, `${afterSigterm.length} requests sent after the guard's SIGTERM`);
  t.ok(acrossSigterm.length > 0, `${acrossSigterm.length} requests in flight at SIGTERM`);
  t.ok(
    afterSigterm.filter((result) => result.status === 200).length >= afterSigterm.length * 0.9,
    "nearly all of them served by the model",
  );
  t.equal(unguarded.size, 3, "Envoy's ext_proc counters read");
  for (const [name, value] of unguarded) t.equal(value, 0, `Envoy's ${name}: nothing went past the guard`);

  t.equal(envoyExited.code, 0, "Envoy exits 0 on its SIGTERM");
  const output = guard.output();
  t.equal(guardExited.code, 0, "the guard exits 0 after its drain");
  t.match(output, /"forced":false,"graceCut":false,"msg":"drained"/, "no stream was cut");
  const refusingAt = loggedAt(output, "draining: refusing new streams");
  t.ok(
    refusingAt >= envoyExited.stoppedAt,
    `the guard took new streams until Envoy stopped (refusing ${Math.round(refusingAt - deletedAt)} ms after SIGTERM, Envoy's preStop ${preStopMs} ms)`,
  );
  t.ok(
    guardExited.at - deletedAt < Math.min(drain.timeoutMs, gracePeriodMs),
    `the guard exited ${Math.round(guardExited.at - deletedAt)} ms after SIGTERM, before drain.timeoutMs and the kill`,
  );
  t.comment(
    `${results.length} requests: ${JSON.stringify(countBy(results, outcome))}; Envoy stopped ${Math.round(envoyExited.at - deletedAt)} ms after deletion`,
  );
});

/** A chat request for `tokens` tokens: the model works PER_TOKEN_MS per requested token. */
function sized(index: number, tokens: number, stream: boolean): Shot {
  const base = chatShot(index);
  return { ...base, body: JSON.stringify({ ...JSON.parse(base.body), max_tokens: tokens, stream }) };
}

/** How long /readyz took to answer 503 (the kubelet's readiness probe), if within `limitMs`. */
async function notReadyWithin(url: string, limitMs: number): Promise<number | undefined> {
  const start = performance.now();
  while (performance.now() - start < limitMs) {
    if ((await fetch(url).then((response) => response.status)) === 503) return performance.now() - start;
    await sleep(10);
  }
  return undefined;
}

/** The guard's own shed answers (admission as shipped: a busy host may shed some). */
function sheds(results: readonly Result[]): Record<string, number> {
  return countBy(
    results.filter((result) => result.status !== 200 && result.headers?.get("x-guard-reason")?.startsWith("shed.")),
    outcome,
  );
}
