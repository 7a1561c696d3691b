// RFC 9457 problem details for a response the guard withheld because of its output contract.
import type { ContractViolation } from "./json-check.js";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";
export const VIOLATED_TYPE = "urn:inference-guard:problem:contract-violated";
export const UNVERIFIABLE_TYPE = "urn:inference-guard:problem:contract-unverifiable";

export interface ViolatedProblemInput {
  readonly status: number;
  readonly route: string;
  readonly contract: string;
  readonly modelVersion: string | undefined;
  readonly violations: readonly ContractViolation[];
  readonly total: number;
}

export function violatedProblem(input: ViolatedProblemInput): string {
  const noun = input.total === 1 ? "violation" : "violations";
  const from = input.modelVersion === undefined ? "" : ` from model version ${input.modelVersion}`;
  return JSON.stringify({
    type: VIOLATED_TYPE,
    title: "Upstream response violates its output contract",
    status: input.status,
    detail: `${input.total} ${noun} of ${input.contract}${from}`,
    route: input.route,
    contract: input.contract,
    model_version: input.modelVersion ?? null,
    violation_count: input.total,
    truncated: input.total > input.violations.length,
    violations: input.violations,
  });
}

export interface UnverifiableProblemInput {
  readonly status: number;
  readonly route: string;
  readonly contract: string;
  readonly modelVersion: string | undefined;
  readonly reason: string;
  readonly detail: string;
}

export function unverifiableProblem(input: UnverifiableProblemInput): string {
  return JSON.stringify({
    type: UNVERIFIABLE_TYPE,
    title: "Upstream response could not be checked against its output contract",
    status: input.status,
    detail: input.detail,
    route: input.route,
    contract: input.contract,
    model_version: input.modelVersion ?? null,
    reason: input.reason,
  });
}
