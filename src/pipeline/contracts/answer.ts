// The answers that replace a response withheld under an enforced output contract. The violations
// travel as members of the answer (rule, JSON path, message) and, the first few of them, in the
// detail sentence: OpenAI SDKs show only the message, and the client must learn what broke.
import type { ContractViolation } from "../../contracts/json-check.js";
import type { Framing } from "../../streams/framing.js";
import { type AnswerFormat, guardAnswer, streamErrorEvent } from "../answers.js";
import type { Reply } from "../types.js";

/** Violations spelled out in the detail; all of them (up to contracts.maxViolations) are in `violations`. */
const VIOLATIONS_IN_DETAIL = 3;

interface WithheldResponse {
  readonly format: AnswerFormat;
  readonly status: number;
  readonly route: string;
  readonly contract: string;
  readonly modelVersion: string | undefined;
  /** The stage's verdict header (x-guard-contract), when it sets one. */
  readonly headers: Readonly<Record<string, string>>;
}

export interface Violated extends WithheldResponse {
  readonly violations: readonly ContractViolation[];
  readonly total: number;
}

/** The sentence naming the violations: the first few spelled out, the rest counted. */
function violatedDetail(
  input: Omit<Violated, keyof WithheldResponse> & Pick<WithheldResponse, "contract" | "modelVersion">,
): string {
  const noun = input.total === 1 ? "violation" : "violations";
  const from = input.modelVersion === undefined ? "" : ` from model version ${input.modelVersion}`;
  const named = input.violations
    .slice(0, VIOLATIONS_IN_DETAIL)
    .map((violation) => `${violation.field}: ${violation.message} (${violation.rule})`);
  const unnamed = input.total - named.length;
  const list = unnamed > 0 ? [...named, `${unnamed} more`] : named;
  return `${input.total} ${noun} of ${input.contract}${from}: ${list.join("; ")}`;
}

function violatedMembers(input: Omit<Violated, "format" | "status" | "headers">) {
  return {
    route: input.route,
    contract: input.contract,
    model_version: input.modelVersion ?? null,
    violation_count: input.total,
    truncated: input.total > input.violations.length,
    violations: input.violations.map(({ field, rule, message }) => ({ field, rule, message })),
  };
}

export function violatedAnswer(input: Violated): Reply {
  return guardAnswer("contract.violated", {
    format: input.format,
    status: input.status,
    detail: violatedDetail(input),
    headers: input.headers,
    extensions: violatedMembers(input),
  });
}

/** The event that ends a streamed answer cut at a violation (the answer of a non-streamed one, in-stream). */
export function violatedStreamEvent(input: Omit<Violated, "format" | "status" | "headers">, framing: Framing): string {
  return streamErrorEvent(
    "contract.violated",
    { type: "contract_violation", detail: violatedDetail(input), extensions: violatedMembers(input) },
    framing,
  );
}

export interface Unverifiable extends WithheldResponse {
  /** Why the body could not be checked: body.too_large, body.streaming, … */
  readonly reason: string;
  readonly detail: string;
}

function unverifiableMembers(input: Omit<Unverifiable, "format" | "status" | "headers">) {
  return {
    route: input.route,
    contract: input.contract,
    model_version: input.modelVersion ?? null,
    reason: input.reason,
  };
}

export function unverifiableAnswer(input: Unverifiable): Reply {
  return guardAnswer("contract.unverifiable", {
    format: input.format,
    status: input.status,
    detail: `${input.contract} could not be checked (${input.reason}): ${input.detail}`,
    headers: input.headers,
    extensions: unverifiableMembers(input),
  });
}

/** The event that ends a streamed answer that cannot be checked, under unverifiable: reject. */
export function unverifiableStreamEvent(
  input: Omit<Unverifiable, "format" | "status" | "headers">,
  framing: Framing,
): string {
  return streamErrorEvent(
    "contract.unverifiable",
    {
      type: "contract_unverifiable",
      detail: `${input.contract} could not be checked (${input.reason}): ${input.detail}`,
      extensions: unverifiableMembers(input),
    },
    framing,
  );
}
