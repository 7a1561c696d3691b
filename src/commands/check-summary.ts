// The verdict of one recorded line and the tally of a whole `inference-guard check` run. The tally
// is fed line by line and keeps only counters, so a recording of any size is summarised in memory
// bounded by its distinct rules and field paths.

import type { CheckResult } from "../contracts/contract.js";
import { normaliseFieldPath } from "../contracts/labels.js";
import { BoundedLabel } from "../metrics/labels.js";

/**
 * passed: every payload conforms. violated: some payload was checked and broke the contract.
 * unverifiable: nothing could be checked, because the line is not JSON or the payload path found
 * no payload (an error body, an empty choices list): that says something about the recording,
 * not about the model's output.
 */
export type Verdict = "passed" | "violated" | "unverifiable";

export interface LineVerdict {
  readonly verdict: Verdict;
  /** For unverifiable lines: "body.not_json" or the payload.* rule that located nothing. */
  readonly reason?: string;
}

const PAYLOAD_RULE_PREFIX = "payload.";

export function verdictOf(result: CheckResult): LineVerdict {
  if (result.valid) return { verdict: "passed" };
  // checkText leaves the body undefined exactly when the line did not parse as JSON.
  if (result.body === undefined) return { verdict: "unverifiable", reason: "body.not_json" };
  const first = result.violations[0];
  const onlyPayloadProblems =
    result.total === result.violations.length &&
    result.violations.every((violation) => violation.rule.startsWith(PAYLOAD_RULE_PREFIX));
  if (onlyPayloadProblems && first !== undefined) return { verdict: "unverifiable", reason: first.rule };
  return { verdict: "violated" };
}

export interface Tolerances {
  /** Highest violated ÷ checked (passed + violated) that still passes. */
  readonly maxViolationRatio: number;
  /** Highest unverifiable ÷ non-blank lines that still passes. */
  readonly maxUnverifiableRatio: number;
}

/** The summary, as printed by --format json (snake_case like the per-line results). */
export interface CheckSummary {
  readonly lines_read: number;
  readonly blank: number;
  /** passed + violated: the lines whose payloads were checked against the contract. */
  readonly checked: number;
  readonly passed: number;
  readonly violated: number;
  readonly unverifiable: number;
  readonly violation_ratio: number;
  readonly unverifiable_ratio: number;
  readonly max_violation_ratio: number;
  readonly max_unverifiable_ratio: number;
  /** Violated lines per rule id (a line counts once per rule), most frequent first. */
  readonly violated_by_rule: Readonly<Record<string, number>>;
  /** Violated lines per field path, indices as [*]; "other" past MAX_FIELD_KEYS distinct paths. */
  readonly violated_by_field: Readonly<Record<string, number>>;
  readonly unverifiable_by_reason: Readonly<Record<string, number>>;
  /** Both ratios within their tolerance: exit status 0. */
  readonly ok: boolean;
}

/** Unknown-field violations carry names the model made up; they must not grow the tally without bound. */
export const MAX_FIELD_KEYS = 200;

export interface CheckTally {
  blank(): void;
  add(result: CheckResult, verdict: LineVerdict): void;
  summary(): CheckSummary;
}

export function checkTally(tolerances: Tolerances): CheckTally {
  let blank = 0;
  let passed = 0;
  let violated = 0;
  let unverifiable = 0;
  const byRule = new Map<string, number>();
  const byField = new Map<string, number>();
  const byReason = new Map<string, number>();
  const fieldKey = new BoundedLabel(MAX_FIELD_KEYS, 200);
  return {
    blank() {
      blank++;
    },
    add(result, { verdict, reason }) {
      if (verdict === "passed") {
        passed++;
      } else if (verdict === "unverifiable") {
        unverifiable++;
        increment(byReason, reason ?? "unknown");
      } else {
        violated++;
        for (const rule of new Set(result.violations.map((violation) => violation.rule))) increment(byRule, rule);
        const fields = new Set(
          result.violations.map((violation) => fieldKey.value(normaliseFieldPath(violation.field))),
        );
        for (const field of fields) increment(byField, field);
      }
    },
    summary() {
      const checked = passed + violated;
      const violationRatio = checked === 0 ? 0 : violated / checked;
      const unverifiableRatio = checked + unverifiable === 0 ? 0 : unverifiable / (checked + unverifiable);
      return {
        lines_read: blank + checked + unverifiable,
        blank,
        checked,
        passed,
        violated,
        unverifiable,
        violation_ratio: violationRatio,
        unverifiable_ratio: unverifiableRatio,
        max_violation_ratio: tolerances.maxViolationRatio,
        max_unverifiable_ratio: tolerances.maxUnverifiableRatio,
        violated_by_rule: mostFrequentFirst(byRule),
        violated_by_field: mostFrequentFirst(byField),
        unverifiable_by_reason: mostFrequentFirst(byReason),
        ok: violationRatio <= tolerances.maxViolationRatio && unverifiableRatio <= tolerances.maxUnverifiableRatio,
      };
    },
  };
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function mostFrequentFirst(counts: ReadonlyMap<string, number>): Record<string, number> {
  return Object.fromEntries([...counts].sort(([a, countA], [b, countB]) => countB - countA || (a < b ? -1 : 1)));
}

/** The summary for people: a few "check: ..." lines, the verdict last. */
export function formatSummary(summary: CheckSummary): string[] {
  const lines = [
    `check: ${summary.lines_read} lines read: ${summary.checked} checked (${summary.passed} passed, ${summary.violated} violated), ${summary.unverifiable} unverifiable, ${summary.blank} blank`,
  ];
  const listed = (title: string, counts: Readonly<Record<string, number>>): void => {
    const entries = Object.entries(counts);
    if (entries.length > 0)
      lines.push(`check: ${title}: ${entries.map(([key, count]) => `${key} ${count}`).join(", ")}`);
  };
  listed("violated lines by rule", summary.violated_by_rule);
  listed("violated lines by field", summary.violated_by_field);
  listed("unverifiable lines by reason", summary.unverifiable_by_reason);
  const ratio = (value: number, max: number, flag: string): string =>
    `${flag.replace("--max-", "")} ${round(value)} ${value <= max ? "within" : "above"} ${flag} ${max}`;
  lines.push(
    `check: ${summary.ok ? "ok" : "FAIL"}: ${ratio(summary.violation_ratio, summary.max_violation_ratio, "--max-violation-ratio")}, ${ratio(summary.unverifiable_ratio, summary.max_unverifiable_ratio, "--max-unverifiable-ratio")}`,
  );
  return lines;
}

function round(ratio: number): number {
  return Math.round(ratio * 10_000) / 10_000;
}
