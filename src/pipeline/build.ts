// The stage line-up. Order matters (see Stage in types.ts): request hooks run top to bottom,
// response hooks bottom to top, so the contract verdict is known before the cache stores.
import type { GuardConfig } from "../config/schema.js";
import type { CompiledContracts } from "../contracts/compile.js";
import { createAdmissionStage } from "./admission/stage.js";
import { createAnnotateStage } from "./annotate.js";
import { type CacheStage, createCacheStage } from "./cache/stage.js";
import { createComplexityStage } from "./complexity/stage.js";
import { type ContractsStage, createContractsStage } from "./contracts/stage.js";
import { createMaintenanceStage } from "./maintenance.js";
import { Pipeline, type PipelineDeps } from "./pipeline.js";
import type { Stage, StageDeps } from "./types.js";

export interface BuiltPipeline {
  readonly pipeline: Pipeline;
  /** Kept by name for the admin purge endpoint. */
  readonly cache: CacheStage;
  /** Absent when no route binds a contract; the status page reads its recent violations. */
  readonly contracts: ContractsStage | undefined;
}

/** `contracts` are the compiled contracts when a route binds one (see config/prepare.ts). */
export function buildPipeline(
  config: GuardConfig,
  deps: PipelineDeps & StageDeps,
  contracts?: CompiledContracts,
): BuiltPipeline {
  const cache = createCacheStage(config, deps);
  const stages: Stage[] = [
    createMaintenanceStage(config),
    createAnnotateStage(config),
    createComplexityStage(config, deps),
    cache,
    createAdmissionStage(config, deps),
  ];
  const contractsStage = contracts === undefined ? undefined : createContractsStage(config, deps, contracts);
  if (contractsStage !== undefined) stages.push(contractsStage);
  return { pipeline: new Pipeline(config.routes, stages, deps), cache, contracts: contractsStage };
}
