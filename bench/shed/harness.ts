// Load-shedding evaluation (issue 5): real Envoy + demo model configured as a capacity-limited
// batching server, under an open-loop offered load sweep, in set-ups run back to back: no
// protection (Envoy alone), Envoy's adaptive_concurrency filter alone, the guard, and a lower
// bound ("critical_only", see workload.ts).
//
// Open loop: request i is sent at start + i/rate whatever happened to earlier ones, so a slow
// server cannot slow the offered load down (a closed loop would hide overload). Every point is
// bounded in count (rate × duration) and time (client timeout).
//
// Then, in the same stack, the retry scenarios (issue 17): closed-loop users that retry, as
// production clients do, each scenario repeated; what reached the model is read from its counters.

import { writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { stringify } from "yaml";
import type { DemoStats } from "../../src/demo/server.js";
import { spawnManaged, waitUntil } from "../../src/devstack/process.js";
import { loadGuardConfigObject, type Stack, type StackOptions, startStack } from "../../src/devstack/stack.js";
import { percentile } from "../../src/util/percentile.js";
import { metricSum } from "../metrics-text.js";
import { closedLoopUsers, type WindowedSample } from "./clients.js";
import {
  type ClientGroup,
  type CompanionTraffic,
  companionTraffic,
  estimatedTokens,
  runsIn,
  stormRoute,
  summariseCompanion,
  withChatBudget,
} from "./companions.js";
import { type Calibration, type PointResult, round, summarise, type UnloadedLatency } from "./report.js";
import {
  type RetryRun,
  type ShedRunReport,
  scenarioName,
  summariseRetryRun,
  type UpstreamCounts,
  worstRuns,
} from "./retry-report.js";
import { guardClasses, sampleTelemetry } from "./telemetry.js";
import { classRules, closedLoop, oneAtATime, openLoop, type Sample } from "./traffic.js";
import {
  type BenchRequest,
  PRIORITIES,
  type Priority,
  type RetryScenario,
  requestFactory,
  type ServerModel,
  type ShedBenchOptions,
  type Variant,
} from "./workload.js";

const CHAT_PATH = "/v1/chat/completions";

function demoArgs(server: ServerModel): string[] {
  return [
    "--capacity",
    String(server.capacity),
    "--base-latency-ms",
    String(server.baseLatencyMs),
    "--per-token-ms",
    String(server.perTokenMs),
    "--per-kb-ms",
    String(server.perKbMs),
    "--batch-penalty",
    String(server.batchPenalty),
  ];
}

async function stackOptions(
  variant: Variant,
  server: ServerModel,
  guardConfig: Readonly<Record<string, unknown>>,
): Promise<StackOptions> {
  const demo = { light: demoArgs(server) };
  if (variant === "none" || variant === "critical_only") return { withGuard: false, demoArgs: demo };
  if (variant === "adaptive_concurrency")
    return { withGuard: false, extraVariants: ["adaptive_concurrency"], demoArgs: demo };
  // The embedded default config (its admission settings are the defaults), logging quietly, with
  // rules giving each class's source address its class (traffic.ts: the only class a guard believes).
  const defaults = await loadGuardConfigObject();
  const identity = { ...(defaults.identity as Record<string, unknown> | undefined), priority: { rules: classRules() } };
  const config = { ...defaults, log: { level: "warn" }, identity, ...guardConfig };
  return { guardConfig: config, demoArgs: demo };
}

/** Waits until the model has nothing in flight, so one point's backlog does not leak into the next. */
async function drained(stack: Stack, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const stats = (await (await fetch(`${stack.light.url}/__demo/stats`)).json()) as { inFlight: number };
    if (stats.inFlight === 0) return;
    await sleep(200);
  }
}

/** Model requests both demo pools have received so far, and their failures (5xx and injected resets). */
async function upstreamTotals(stack: Stack): Promise<UpstreamCounts> {
  let attempts = 0;
  let errors = 0;
  for (const pool of [stack.light, stack.heavy]) {
    const stats = (await (await fetch(`${pool.url}/__demo/stats`)).json()) as DemoStats;
    // An attempt still in flight has been received: counted now, it is not counted again later.
    attempts += stats.served + stats.abandoned + stats.inFlight;
    for (const [status, count] of Object.entries(stats.byStatus))
      if (status === "reset" || Number(status) >= 500) errors += count;
  }
  return { attempts, errors };
}

/** Users that offer `load` × capacity while every request takes its unloaded time. */
function usersFor(
  load: number,
  capacity: Pick<Calibration, "capacityPerSecond" | "capacityWorkMsPerSecond">,
  thinkMs: number,
): number {
  const meanWorkMs = capacity.capacityWorkMsPerSecond / capacity.capacityPerSecond;
  return Math.max(1, Math.round((load * capacity.capacityPerSecond * (thinkMs + meanWorkMs)) / 1000));
}

interface RetryRunPlan {
  readonly variant: Variant;
  readonly scenario: RetryScenario;
  readonly repeat: number;
  readonly users: number;
  readonly capacityPerSecond: number;
  readonly seed: number;
  readonly traffic: CompanionTraffic;
}

/**
 * The guard's config file rewritten with the chat route's tenant budget (or none) and reloaded. A
 * reload starts the guard's counters afresh: `counted` is handed its metrics from before.
 */
async function setChatBudget(
  stack: Stack,
  tokensPerMinute: number | undefined,
  counted: (metrics: string) => void,
): Promise<void> {
  const guard = stack.guard;
  if (guard === undefined) throw new Error("a tenant budget needs the guard");
  const reloads = async (metrics?: string): Promise<number> =>
    metricSum(metrics ?? (await guard.metrics()), "guard_config_reloads_total", { result: "success" });
  const metrics = await guard.metrics();
  counted(metrics);
  const before = await reloads(metrics);
  const config = withChatBudget(await loadGuardConfigObject(guard.configFile), tokensPerMinute);
  await writeFile(guard.configFile, stringify(config));
  guard.process().child.kill("SIGHUP");
  await waitUntil("the guard's config reload", async () => (await reloads()) > before, 10_000, guard.process());
}

/**
 * A companion's attempts a model received, answered or cut by Envoy's upstream timeout (504): not
 * the users' load.
 */
const reachedModel = (attempts: readonly Sample[]): Sample[] =>
  attempts.filter((attempt) => attempt.fromModel || attempt.status === 504);

/**
 * One run of a retry scenario: its users (and companions, a lead ahead) until every logical request
 * ended, then the model drained.
 */
async function retryRun(
  stack: Stack,
  options: ShedBenchOptions,
  plan: RetryRunPlan,
  counted: (metrics: string) => void,
): Promise<RetryRun> {
  const { retry } = options;
  const { traffic } = plan;
  const group = (clients: ClientGroup, seed: number): Promise<WindowedSample[]> =>
    closedLoopUsers(
      `${stack.url}${clients.path ?? CHAT_PATH}`,
      {
        users: clients.users,
        thinkMs: retry.thinkMs,
        attemptTimeoutMs: retry.attemptTimeoutMs,
        policy: clients.policy,
        seed,
        headers: clients.headers,
      },
      clients.leadMs + retry.scenarioMs,
      clients.next,
    );
  if (traffic.tokensPerMinute !== undefined) await setChatBudget(stack, traffic.tokensPerMinute, counted);
  const before = await upstreamTotals(stack);
  // What the companion offers, in estimated tokens per logical request (it is sent once or retried as it is).
  let offeredTokens = 0;
  const tallied = (request: BenchRequest): BenchRequest => {
    offeredTokens += estimatedTokens(request);
    return request;
  };
  const sideGroup = traffic.side;
  const side =
    sideGroup === undefined
      ? undefined
      : group({ ...sideGroup, next: (index) => tallied(sideGroup.next(index)) }, plan.seed + 50_000);
  await sleep(sideGroup?.leadMs ?? 0);
  const hog =
    plan.scenario.cpuHog === true ? spawnManaged("cpu-hog", process.execPath, ["-e", "for (;;);"]) : undefined;
  const stopTelemetry = sampleTelemetry(stack, options.server.capacity);
  let samples: WindowedSample[];
  let sideSamples: WindowedSample[] = [];
  try {
    const mains = await Promise.all(traffic.main.map((clients, index) => group(clients, plan.seed + 7_919 * index)));
    samples = mains.flat();
    sideSamples = (await side) ?? [];
  } finally {
    await hog?.stop("SIGKILL");
  }
  const telemetry = await stopTelemetry();
  await drained(stack, options.clientTimeoutMs);
  const after = await upstreamTotals(stack);
  if (traffic.tokensPerMinute !== undefined) await setChatBudget(stack, undefined, counted);
  const sideAttempts = sideSamples.flatMap((sample) => sample.attempts);
  const sideAnswered = reachedModel(sideAttempts);
  const companion =
    traffic.side === undefined || plan.scenario.companion === undefined
      ? undefined
      : summariseCompanion({
          companion: plan.scenario.companion,
          group: traffic.side,
          attempts: sideAttempts,
          logical: sideSamples.length,
          succeeded: sideSamples.filter((sample) => sample.ok).length,
          durationMs: traffic.side.leadMs + retry.scenarioMs,
          tokensPerMinute: traffic.tokensPerMinute,
          offeredTokens,
        });
  return summariseRetryRun({
    ...plan,
    durationMs: retry.scenarioMs,
    samples,
    upstream: {
      attempts: after.attempts - before.attempts - sideAnswered.length,
      errors:
        after.errors -
        before.errors -
        sideAnswered.filter((attempt) => attempt.fromModel && attempt.status >= 500).length,
    },
    telemetry,
    ...(companion === undefined ? {} : { companion }),
  });
}

export async function runShedBench(options: ShedBenchOptions): Promise<ShedRunReport> {
  const log = options.log ?? (() => undefined);
  // Every variant gets the same requests at the same stage (each stage its own seeded stream), so
  // set-ups compare like with like; a shared stream would hand each a different size draw.
  const requestsFor = (stream: number): ((index: number) => BenchRequest) =>
    requestFactory({ ...options, seed: options.seed + stream });
  // The mean request's tokens, to size the tenant scenarios' budget.
  const draw = requestsFor(999);
  const tokensPerRequest =
    Array.from({ length: 1_000 }, (_, index) => estimatedTokens(draw(index))).reduce((sum, tokens) => sum + tokens, 0) /
    1_000;
  const points: PointResult[] = [];
  const retryRuns: RetryRun[] = [];
  const users: Record<string, number> = {};
  const unloaded: Partial<Record<Variant, UnloadedLatency>> = {};
  let capacity: Pick<Calibration, "capacityPerSecond" | "capacityWorkMsPerSecond"> | undefined;
  let classes: Record<Priority, number> | null = null;
  const countClasses = (metrics: string): void => {
    const seen = guardClasses(metrics);
    classes = Object.fromEntries(
      PRIORITIES.map((priority) => [priority, (classes?.[priority] ?? 0) + seen[priority]]),
    ) as Record<Priority, number>;
  };
  for (const variant of options.variants) {
    const stack = await startStack({
      ...(await stackOptions(variant, options.server, options.guardConfig ?? {})),
      editEnvoyConfig: stormRoute,
    });
    const url = `${stack.url}${CHAT_PATH}`;
    try {
      const idle = await oneAtATime(url, options.unloadedSamples, requestsFor(1), options.clientTimeoutMs);
      const idleServed = idle.filter((sample) => sample.status === 200);
      const idleMs = idleServed.map((sample) => sample.ms);
      unloaded[variant] = {
        p50Ms: round(percentile(idleMs, 0.5)) ?? 0,
        p99Ms: round(percentile(idleMs, 0.99)) ?? 0,
        slowdownP99:
          round(
            percentile(
              idleServed.map((sample) => sample.ms / sample.workMs),
              0.99,
            ),
            2,
          ) ?? 0,
      };
      if (capacity === undefined) {
        // Saturated closed loop: every slot busy, a short queue behind them.
        const saturated = await closedLoop(
          url,
          Math.ceil(options.server.capacity * 1.5),
          options.calibrationMs,
          requestsFor(0),
          options.clientTimeoutMs,
        );
        const served = saturated.filter((sample) => sample.status === 200);
        const seconds = options.calibrationMs / 1000;
        capacity = {
          capacityPerSecond: round(served.length / seconds, 2) ?? 0,
          capacityWorkMsPerSecond: round(served.reduce((sum, sample) => sum + sample.workMs, 0) / seconds, 1) ?? 0,
        };
        log(`capacity: ${capacity.capacityPerSecond} req/s (${capacity.capacityWorkMsPerSecond} work-ms/s)`);
        await drained(stack, options.clientTimeoutMs);
      }
      const perSecond = capacity.capacityPerSecond;
      log(`${variant}: unloaded p50 ${unloaded[variant]?.p50Ms} ms, p99 ${unloaded[variant]?.p99Ms} ms`);
      if (options.warmUpMs > 0) {
        await openLoop(url, perSecond, options.warmUpMs, requestsFor(2), options.clientTimeoutMs);
        await drained(stack, options.clientTimeoutMs);
      }
      for (const [index, load] of options.points.entries()) {
        const rate = load * perSecond;
        const stopTelemetry = sampleTelemetry(stack, options.server.capacity);
        const sends =
          variant === "critical_only" ? (request: BenchRequest) => request.priority === "critical" : undefined;
        const samples = await openLoop(
          url,
          rate,
          options.pointMs,
          requestsFor(3 + index),
          options.clientTimeoutMs,
          sends,
        );
        const result = summarise(variant, load, rate, options.pointMs, samples, capacity, await stopTelemetry());
        points.push(result);
        log(
          `${variant} ${load}x: goodput ${result.goodputPerSecond}/s (${Math.round(result.goodputShareOfCapacity * 100)}% of capacity), critical kept ${result.byClass.critical.keptShare}, not 200: ${JSON.stringify(result.failures)}, telemetry ${JSON.stringify(result.telemetry)}`,
        );
        await drained(stack, options.clientTimeoutMs);
      }
      // The lower bound is an open-loop measurement; a retrying client has nothing to compare there.
      if (variant !== "critical_only") {
        const known = capacity;
        for (let repeat = 1; repeat <= options.retry.repeats; repeat++) {
          for (const [index, scenario] of options.retry.scenarios.entries()) {
            if (!runsIn(scenario, variant)) continue;
            const name = scenarioName(scenario);
            users[name] ??= usersFor(scenario.load, capacity, options.retry.thinkMs);
            const stream = 1000 + 100 * repeat + index;
            const traffic = companionTraffic(scenario, {
              users: users[name],
              capacityPerSecond: capacity.capacityPerSecond,
              tokensPerRequest,
              criticalShare: options.mix.critical,
              usersFor: (load) => usersFor(load, known, options.retry.thinkMs),
              next: requestsFor(stream),
              sideNext: requestsFor(stream + 50_000),
            });
            const run = await retryRun(
              stack,
              options,
              {
                variant,
                scenario,
                repeat,
                users: users[name],
                capacityPerSecond: capacity.capacityPerSecond,
                seed: options.seed + 100 * repeat + index,
                traffic,
              },
              countClasses,
            );
            retryRuns.push(run);
            log(
              `${variant} ${name} #${repeat}: ${run.users} users, goodput ${run.goodput}, critical success ${run.critical.successRate}, amplification ${run.amplification} (client ${run.clientAttemptsPerLogical}), shed ${run.shedShare}, own 5xx ${run.own5xx}, p99 ${run.successP99Ms} ms, attempts ${JSON.stringify(run.attemptOutcomes)}`,
            );
          }
        }
      }
      if (stack.guard !== undefined) countClasses(await stack.guard.metrics());
    } finally {
      await stack.stop();
    }
  }
  const { log: _log, ...recorded } = options;
  return {
    date: new Date().toISOString(),
    options: recorded,
    calibration: { ...(capacity ?? { capacityPerSecond: 0, capacityWorkMsPerSecond: 0 }), unloaded },
    points,
    guardClasses: classes,
    retry: { users, worst: worstRuns(retryRuns), runs: retryRuns },
  };
}
