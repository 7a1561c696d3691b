// Wires a validated config into a running guard: metrics, pipeline, ext_proc gRPC server and admin
// HTTP. Owns the lifecycle: ready → draining (readiness false, in-flight streams finish) → stopped.
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import type { GuardConfig } from "../config/schema.js";
import { createCoreMetrics } from "../metrics/registry.js";
import { buildPipeline } from "../pipeline/build.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import { VERSION } from "../version.js";
import { startAdminServer, type AdminServer } from "./admin.js";
import { startGrpcServer, type GrpcServer } from "./grpc.js";

export interface RunningGuard {
  readonly grpcAddress: string;
  readonly adminUrl: string;
  /** Readiness false, wait for open streams (bounded by drain.timeoutMs), close listeners. */
  drain(): Promise<{ forced: boolean }>;
}

export async function startGuard(config: GuardConfig, log: Logger): Promise<RunningGuard> {
  const metrics = createCoreMetrics(VERSION);
  const now = (): number => performance.now();
  const pipeline: Pipeline = buildPipeline(config, { metrics, registry: metrics.registry, log, now });
  let ready = false;

  const grpc: GrpcServer = await startGrpcServer(config.listen.grpc, config.listen.socketMode, {
    pipeline: () => pipeline,
    metrics,
    log,
    now,
  });
  let admin: AdminServer;
  try {
    admin = await startAdminServer(config.listen.admin, { registry: () => metrics.registry, ready: () => ready });
  } catch (error) {
    await grpc.drain(0);
    throw error;
  }
  ready = true;
  log.info({ grpc: grpc.address, admin: admin.url, routes: config.routes.map((route) => route.name), version: VERSION }, "inference-guard ready");

  let draining: Promise<{ forced: boolean }> | undefined;
  return {
    grpcAddress: grpc.address,
    adminUrl: admin.url,
    drain() {
      draining ??= (async () => {
        ready = false;
        grpc.setServing(false);
        log.info({ openStreams: grpc.activeStreams(), timeoutMs: config.drain.timeoutMs }, "draining");
        const result = await grpc.drain(config.drain.timeoutMs);
        await admin.close();
        log.info({ forced: result.forced }, "drained");
        return result;
      })();
      return draining;
    },
  };
}
