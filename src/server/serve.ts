// Wires a validated config into a running guard: metrics, pipeline, ext_proc gRPC server and admin
// HTTP. Owns the lifecycle: ready → (reloads) → grace (readiness false, new streams still served)
// → closing (new streams refused, open ones finish) → stopped (drain.ts). A reload swaps the
// pipeline for new streams only; streams already open keep theirs.
import { type FSWatcher, watch } from "node:fs";
import { basename, dirname } from "node:path";
import { performance } from "node:perf_hooks";
import { type PreparedGuard, prepareGuard } from "../config/prepare.js";
import type { GuardConfig } from "../config/schema.js";
import type { ConfigIssue } from "../config-kit/issues.js";
import { ModeOverrideWatch } from "../extproc/override-watch.js";
import type { ComponentLogs } from "../log.js";
import { type CoreMetrics, createCoreMetrics } from "../metrics/registry.js";
import { type BuiltPipeline, buildPipeline } from "../pipeline/build.js";
import { CanaryStates } from "../pipeline/canary/stage.js";
import { RecentViolations } from "../pipeline/contracts/recent.js";
import { DriftHistory } from "../pipeline/drift/monitor.js";
import { startTracing } from "../tracing/start.js";
import { VERSION } from "../version.js";
import { type AdminHandler, type AdminServer, sendJson, startAdminServer } from "./admin.js";
import { ADMIN_TOKEN_ENV, type AdminAccess, adminAccess } from "./admin-access.js";
import { Drain, type DrainResult } from "./drain.js";
import { registerEnvoyBypass } from "./envoy-bypass.js";
import { type GrpcServer, startGrpcServer } from "./grpc.js";
import { statusPageRoutes } from "./status/page.js";
import { StatusReporter } from "./status/report.js";

export interface RunningGuard {
  readonly grpcAddress: string;
  readonly adminUrl: string;
  /** Re-reads the config file; a bad file is rejected with its errors and the running config stays. */
  reload(): Promise<ReloadResult>;
  /**
   * The first call: readiness false, new streams served for drain.graceMs more, then refused;
   * open streams cut drain.timeoutMs after the first call; then the listeners close. A call
   * during the grace ends the grace.
   */
  drain(): Promise<DrainResult>;
}

export type ReloadResult =
  | { readonly ok: true; readonly warnings: readonly ConfigIssue[] }
  | { readonly ok: false; readonly errors: readonly ConfigIssue[] };

export interface GuardOptions {
  /** The file the config came from: reloads read it again. */
  readonly configFile?: string;
  /** Reload when the config file changes (in addition to SIGHUP). */
  readonly watch?: boolean;
}

const RELOAD_DEBOUNCE_MS = 250;
/** A scrape waits at most this long for Envoy's counters, then reports the last ones. */
const ENVOY_STATS_TIMEOUT_MS = 1_000;

export async function startGuard(
  initial: Extract<PreparedGuard, { ok: true }>,
  logs: ComponentLogs,
  options: GuardOptions = {},
): Promise<RunningGuard> {
  const log = logs.root;
  const reloadLog = logs.of("reload");
  const metrics: CoreMetrics = createCoreMetrics(VERSION);
  const now = (): number => performance.now();
  // Read once: an exporter holds connections and a queue, so the section applies at restart.
  const tracer = await startTracing(initial.config.tracing, process.env, logs.of("tracing"), VERSION);
  // The status page's violations table and the drift profiles outlive a reload, as the metrics do.
  const recentViolations = new RecentViolations();
  const driftHistory = new DriftHistory();
  // A quarantined candidate stays out of traffic through a config edit.
  const canaryStates = new CanaryStates();
  const build = async (prepared: Extract<PreparedGuard, { ok: true }>): Promise<BuiltPipeline> => {
    const built = buildPipeline(
      prepared.config,
      { metrics, registry: metrics.registry, logs, now, tracer, recentViolations, driftHistory, canaryStates },
      prepared.contracts,
    );
    await Promise.all(built.pipeline.stages.map((stage) => stage.warmUp?.()));
    return built;
  };
  let config: GuardConfig = initial.config;
  let current = await build(initial);
  let ready = false;

  const grpc: GrpcServer = await startGrpcServer(
    config.listen.grpc,
    config.listen.socketMode,
    {
      pipeline: () => current.pipeline,
      metrics,
      log: logs.of("grpc"),
      now,
      requestBufferLimitBytes: () => config.envoy.bufferLimitBytes,
      messageTimeoutMs: () => config.envoy.messageTimeoutMs,
      overrideWatch: new ModeOverrideWatch(metrics.modeOverrideIgnored, logs.of("grpc")),
    },
    config.limits,
  );
  registerEnvoyBypass(metrics.registry, () =>
    config.envoy.adminUrl === undefined
      ? undefined
      : { adminUrl: config.envoy.adminUrl, guardCluster: config.envoy.guardCluster, timeoutMs: ENVOY_STATS_TIMEOUT_MS },
  );
  const status = new StatusReporter({
    registry: () => metrics.registry,
    recentViolations: () => (current.contracts === undefined ? undefined : recentViolations),
    drift: () => current.drift,
    rollouts: () => current.canary.status(),
    routes: () => config.routes.map((route) => route.name),
    version: VERSION,
    now,
  });
  // The address the admin server is bound to: listen addresses change only on restart.
  const adminAddress = config.listen.admin;
  const accessFor = (section: GuardConfig["admin"]): AdminAccess =>
    adminAccess({
      address: adminAddress,
      allowedHosts: section.allowedHosts,
      tokenFile: section.tokenFile,
      envToken: process.env[ADMIN_TOKEN_ENV],
    });
  let access = accessFor(config.admin);
  let admin: AdminServer;
  try {
    admin = await startAdminServer(adminAddress, {
      registry: () => metrics.registry,
      ready: () => ready,
      access: (request) => access(request),
      routes: new Map([
        ["POST /admin/cache/purge", purgeHandler(() => current)],
        ["POST /admin/canary/release", releaseHandler(() => current)],
        ["GET /api/canary", (_request, response) => sendJson(response, 200, { routes: current.canary.status() })],
        ...(await statusPageRoutes(status)),
      ]),
    });
  } catch (error) {
    await grpc.drain(0);
    throw error;
  }
  ready = true;
  log.info(
    { grpc: grpc.address, admin: admin.url, routes: config.routes.map((route) => route.name), version: VERSION },
    "inference-guard ready",
  );

  let reloading: Promise<ReloadResult> = Promise.resolve({ ok: true, warnings: [] });
  const reloadOnce = async (): Promise<ReloadResult> => {
    if (options.configFile === undefined)
      return { ok: false, errors: [{ path: "", message: "no config file to reload (embedded default)" }] };
    const loaded = await prepareGuard(options.configFile);
    const result = loaded.ok ? "success" : "failure";
    metrics.reloads.inc({ result });
    metrics.lastReload.set({ result }, Date.now() / 1000);
    if (!loaded.ok) {
      reloadLog.error(
        { file: options.configFile, errors: loaded.errors, warnings: loaded.warnings },
        "reload rejected; the running configuration stays",
      );
      return { ok: false, errors: loaded.errors };
    }
    const next = loaded.config;
    if (next.listen.grpc !== config.listen.grpc || next.listen.admin !== config.listen.admin) {
      reloadLog.warn({ grpc: next.listen.grpc, admin: next.listen.admin }, "listen addresses change only on restart");
    }
    if (JSON.stringify(next.limits) !== JSON.stringify(config.limits))
      reloadLog.warn({ limits: next.limits }, "limits change only on restart");
    if (JSON.stringify(next.tracing) !== JSON.stringify(config.tracing))
      reloadLog.warn({ tracing: next.tracing }, "tracing changes only on restart");
    const previous = current.pipeline;
    current = await build(loaded);
    // The new stages' counters and histograms go on from the old ones' (metrics/reloadable.ts),
    // but for a removed route's.
    metrics.registry.carryOver();
    metrics.registry.dropRoutesOtherThan(new Set(next.routes.map((route) => route.name)));
    config = next;
    access = accessFor(next.admin);
    logs.apply(next.log);
    // Streams opened before the swap still run on the previous pipeline; release it after they
    // had the drain budget to finish.
    setTimeout(() => void previous.close(), config.drain.timeoutMs).unref();
    for (const warning of loaded.warnings) reloadLog.warn({ path: warning.path }, warning.message);
    reloadLog.info({ routes: next.routes.map((route) => route.name) }, "configuration reloaded");
    return { ok: true, warnings: loaded.warnings };
  };
  const reload = (): Promise<ReloadResult> => {
    reloading = reloading.then(reloadOnce, reloadOnce);
    return reloading;
  };

  let watcher: FSWatcher | undefined;
  if (options.watch === true && options.configFile !== undefined) {
    let timer: NodeJS.Timeout | undefined;
    const file = basename(options.configFile);
    // The directory, not the file: editors and Kubernetes ConfigMaps replace files by rename (a
    // watch on the old inode would go quiet), in several steps, so reload once things settle.
    watcher = watch(dirname(options.configFile), (_event, changed) => {
      if (changed !== null && changed !== file && !changed.startsWith("..")) return;
      clearTimeout(timer);
      timer = setTimeout(() => void reload(), RELOAD_DEBOUNCE_MS);
    });
    watcher.on("error", (error) =>
      reloadLog.warn({ err: error.message }, "config file watch failed; SIGHUP still reloads"),
    );
  }

  let draining: Drain | undefined;
  return {
    grpcAddress: grpc.address,
    adminUrl: admin.url,
    reload,
    async drain() {
      if (draining !== undefined) {
        if (draining.phase === "grace") log.info("draining: grace ended early");
        return draining.request();
      }
      // The plan is fixed here: a reload during the drain must not move its deadline.
      const plan = config.drain;
      draining = new Drain(plan, {
        notReady() {
          ready = false;
          watcher?.close();
          grpc.setServing(false);
          log.info({ openStreams: grpc.activeStreams(), ...plan }, "draining: not ready, still serving new streams");
        },
        async stopAccepting(remainingMs) {
          log.info({ openStreams: grpc.activeStreams(), remainingMs }, "draining: refusing new streams");
          const result = await grpc.drain(remainingMs);
          await current.pipeline.close();
          // The last exchanges' spans are still queued for export; a dead receiver costs at most 2 s.
          await tracer?.shutdown(2_000);
          await admin.close();
          return result;
        },
      });
      const result = await draining.request();
      log.info(result, "drained");
      return result;
    },
  };
}

/** An operator's release of a quarantined rollout candidate: POST /admin/canary/release?route=R&pool=P. */
function releaseHandler(built: () => BuiltPipeline): AdminHandler {
  return (_request, response, url) => {
    const route = url.searchParams.get("route") ?? "";
    const pool = url.searchParams.get("pool") ?? "";
    if (route === "" || pool === "")
      return sendJson(response, 400, {
        error: "missing_parameter",
        message: "POST /admin/canary/release?route=NAME&pool=POOL",
      });
    const result = built().canary.release(route, pool);
    if (result === "unknown")
      return sendJson(response, 404, {
        error: "unknown_pool",
        message: `route "${route}" has no candidate pool "${pool}"`,
      });
    sendJson(response, 200, { route, pool, result });
  };
}

function purgeHandler(built: () => BuiltPipeline): AdminHandler {
  return async (_request, response, url) => {
    const route = url.searchParams.get("route");
    if (route === null || route === "")
      return sendJson(response, 400, { error: "missing_route", message: "POST /admin/cache/purge?route=NAME" });
    const result = await built().cache.purgeRoute(route);
    if (result === undefined)
      return sendJson(response, 404, { error: "unknown_route", message: `no route "${route}" has the cache enabled` });
    sendJson(response, 200, result);
  };
}
