// How an answer's payloads become profile observations, shared by the running monitor (which gets
// them from the contract check that already found them) and the offline `inference-guard check
// --baseline` (which finds them by the contract's payload path): each profiled field is read from
// a payload by its proto or JSON name.
import type { Contract } from "../../contracts/contract.js";
import { type FieldSpec, profiledFields, valueAt } from "../../contracts/fields.js";
import { extractPayloads, type Payload, type PayloadStep, parsePayloadPath } from "../../contracts/payload.js";
import type { VersionProfile } from "./profile.js";

/** Payloads of one answer profiled at most (the contract checks up to contracts.maxPayloads). */
const MAX_PAYLOADS = 64;

/** What of a contract the profiles read: its fields, where its payloads are, its wrap field. */
export interface AnswerShape {
  readonly specs: readonly FieldSpec[];
  readonly steps: readonly PayloadStep[];
  /** The contract's wrapField name: each payload is that field's value, not a message. */
  readonly wrap: string | undefined;
}

/** Undefined when the contract's payload path does not parse (config validation rejects it first). */
export function answerShape(contract: Contract, maxFields: number): AnswerShape | undefined {
  const parsed = parsePayloadPath(contract.spec.payload ?? "$");
  if (!parsed.ok) return undefined;
  const wrap = contract.wrap?.name;
  const fields = profiledFields(contract.spec.message, maxFields);
  return {
    specs: wrap === undefined ? fields : fields.filter((spec) => spec.path === wrap),
    steps: parsed.steps,
    wrap,
  };
}

/** The payloads of a parsed body, found by the contract's payload path (what a check finds). */
export function payloadsOf(shape: AnswerShape, body: unknown): Payload[] {
  return extractPayloads(body, shape.steps, MAX_PAYLOADS).payloads;
}

/** An answer's payloads into the profile; a missing payload has every field missing. */
export function observePayloads(profile: VersionProfile, shape: AnswerShape, payloads: readonly Payload[]): void {
  for (const payload of payloads.length > MAX_PAYLOADS ? payloads.slice(0, MAX_PAYLOADS) : payloads) {
    const value = "value" in payload ? payload.value : undefined;
    const root = shape.wrap === undefined ? value : { [shape.wrap]: value };
    profile.observePayload((index) => valueAt(root, shape.specs[index]?.keys ?? []));
  }
}
