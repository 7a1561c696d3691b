// The stage line-up. Order matters (see Stage in types.ts): request hooks run top to bottom,
// response hooks bottom to top.
import type { GuardConfig } from "../config/schema.js";
import { createAnnotateStage } from "./annotate.js";
import { createMaintenanceStage } from "./maintenance.js";
import { Pipeline, type PipelineDeps } from "./pipeline.js";
import type { Stage, StageDeps } from "./types.js";

export function buildPipeline(config: GuardConfig, deps: PipelineDeps & StageDeps): Pipeline {
  const stages: Stage[] = [createMaintenanceStage(config), createAnnotateStage(config)];
  return new Pipeline(config.routes, stages, deps);
}
