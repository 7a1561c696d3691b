// What the demo model answers, per task and per variant. "v1" is the conforming model; every
// other variant is a named way a new model version silently breaks its output contract.
// The contract tests walk this catalogue, so each break here must be caught by a contract in proto/.
import type { JsonValue } from "../pipeline/types.js";

export interface TaskOutputs {
  /** Output of the conforming model for a request input (deterministic for a given input). */
  readonly conforming: (input: JsonValue) => JsonValue;
  /** Named breaking variants: a new model version that changed something it should not have. */
  readonly breaks: Readonly<Record<string, (input: JsonValue) => JsonValue>>;
}

export const TASKS: Readonly<Record<string, TaskOutputs>> = {
  sentiment: {
    conforming: () => ({ label: "POSITIVE", score: 0.93 }),
    breaks: {
      score_rescaled: () => ({ label: "POSITIVE", score: 93 }),
    },
  },
};

/** Returns undefined for an unknown task or variant (the demo model answers 404 then). */
export function renderOutput(task: string, variant: string, input: JsonValue): JsonValue | undefined {
  const outputs = TASKS[task];
  if (outputs === undefined) return undefined;
  if (variant === "v1") return outputs.conforming(input);
  return outputs.breaks[variant]?.(input);
}
