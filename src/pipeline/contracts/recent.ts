// The latest violation seen per (contract, model version, rule), for the status page's "which
// version broke what" table. Only the violation's own description is kept (JSON path, rule id,
// message): never the response body, so nothing a model returned leaks into the admin port.
import type { ContractViolation } from "../../contracts/json-check.js";

export interface ViolationExample {
  readonly contract: string;
  readonly modelVersion: string;
  readonly rule: string;
  readonly field: string;
  readonly message: string;
  /** Monotonic ms (deps.now) when it was seen. */
  readonly seenAt: number;
}

/** Longest field path and message kept; both are bounded upstream too, this bounds the memory. */
const MAX_TEXT = 240;

export class RecentViolations {
  /** Insertion order is recency order: an update moves the key to the end, the oldest goes first. */
  readonly #examples = new Map<string, ViolationExample>();

  constructor(readonly limit = 256) {}

  /** Records the first violation of each distinct rule in one response. */
  record(contract: string, modelVersion: string, violations: readonly ContractViolation[], seenAt: number): void {
    const seenRules = new Set<string>();
    for (const violation of violations) {
      if (seenRules.has(violation.rule)) continue;
      seenRules.add(violation.rule);
      const key = JSON.stringify([contract, modelVersion, violation.rule]);
      this.#examples.delete(key);
      this.#examples.set(key, {
        contract,
        modelVersion,
        rule: violation.rule,
        field: clip(violation.field),
        message: clip(violation.message),
        seenAt,
      });
      if (this.#examples.size > this.limit) {
        const oldest = this.#examples.keys().next().value;
        if (oldest !== undefined) this.#examples.delete(oldest);
      }
    }
  }

  get(contract: string, modelVersion: string, rule: string): ViolationExample | undefined {
    return this.#examples.get(JSON.stringify([contract, modelVersion, rule]));
  }
}

function clip(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT - 1)}…` : text;
}
