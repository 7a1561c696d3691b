// Test-compiles every contract message at startup: all CEL expressions are parsed, and
// protovalidate plans and evaluates each message once on a synthetic, fully populated instance, so
// a bad rule stops startup instead of failing the first request. Each problem points at its line.
import { parse as parseCel } from "@bufbuild/cel";
import { create, type DescMessage, type FileRegistry, fromJson, getOption, type Message } from "@bufbuild/protobuf";
import type { Validator } from "@bufbuild/protovalidate";
import {
  type FieldRules,
  field as fieldRulesExt,
  message as messageRulesExt,
  type Rule,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { probeJson } from "./probe-instance.js";
import type { ContractSourceError } from "./source-error.js";
import type { Locator } from "./source-location.js";

function celRulesOf(rules: FieldRules): Rule[] {
  const nested: Rule[] = [...rules.cel];
  const type = rules.type;
  if (type.case === "repeated" && type.value.items !== undefined) nested.push(...celRulesOf(type.value.items));
  if (type.case === "map") {
    if (type.value.keys !== undefined) nested.push(...celRulesOf(type.value.keys));
    if (type.value.values !== undefined) nested.push(...celRulesOf(type.value.values));
  }
  return nested;
}

/** Errors that depend on the data, which the synthetic probe message may trigger legitimately. */
const DATA_DEPENDENT = /division by zero|modulus by zero|index out of|out of range|overflow|no such key|key not found/i;

interface LocatedRule {
  readonly label: string;
  readonly where: ContractSourceError;
}

function rulesOf(message: DescMessage, locate: Locator): { rule: Rule; located: LocatedRule }[] {
  const rules: { rule: Rule; located: LocatedRule }[] = [];
  const add = (rule: Rule, where: ContractSourceError): void => {
    rules.push({ rule, located: { label: rule.id === "" ? rule.expression : rule.id, where } });
  };
  for (const [index, rule] of getOption(message, messageRulesExt).cel.entries())
    add(rule, locate.message(message, index));
  for (const field of message.fields) {
    const fieldRules = getOption(field, fieldRulesExt);
    for (const [index, rule] of fieldRules.cel.entries()) add(rule, locate.field(field, index));
    for (const rule of celRulesOf(fieldRules).slice(fieldRules.cel.length)) add(rule, locate.field(field));
  }
  return rules;
}

export function celSyntaxErrors(message: DescMessage, locate: Locator): ContractSourceError[] {
  const errors: ContractSourceError[] = [];
  for (const { rule, located } of rulesOf(message, locate)) {
    try {
      parseCel(rule.expression);
    } catch (error) {
      errors.push({ ...located.where, message: `CEL rule "${located.label}" does not compile: ${firstLine(error)}` });
    }
  }
  return errors;
}

export interface ProbeError {
  readonly text: string;
  readonly error: ContractSourceError;
  /** The error was tied to a rule or field of this message (not of a message it contains). */
  readonly own: boolean;
}

export function probeError(
  message: DescMessage,
  validator: Validator,
  registry: FileRegistry,
  locate: Locator,
): ProbeError | undefined {
  let probe: Message;
  try {
    probe = fromJson(message, probeJson(message, 0), { registry });
  } catch {
    // A message the probe cannot populate is still planned (and its rules compiled) empty.
    probe = create(message);
  }
  const result = validator.validate(message, probe);
  if (result.kind !== "error") return undefined;
  const text = firstLine(result.error);
  if (result.error.name === "RuntimeError" && DATA_DEPENDENT.test(text)) return undefined;
  const located = whereIs(
    text,
    message,
    rulesOf(message, locate).map((rule) => rule.located),
    locate,
  );
  return { text, own: located.own, error: { ...located.where, message: `${message.typeName}: ${text}` } };
}

/**
 * Evaluating a message evaluates the messages it contains, so one bad rule can fail several
 * probes: report it once, preferably where the rule itself is.
 */
export function dedupeProbeErrors(probes: readonly ProbeError[]): ContractSourceError[] {
  const byText = new Map<string, ProbeError>();
  for (const probe of probes) {
    const seen = byText.get(probe.text);
    if (seen === undefined || (!seen.own && probe.own)) byText.set(probe.text, probe);
  }
  return [...byText.values()].map((probe) => probe.error);
}

function whereIs(
  text: string,
  message: DescMessage,
  rules: readonly LocatedRule[],
  locate: Locator,
): { where: ContractSourceError; own: boolean } {
  const fieldName = /on field ([\w.]+)/.exec(text)?.[1];
  const field = message.fields.find((candidate) => `${message.typeName}.${candidate.name}` === fieldName);
  if (field !== undefined) return { where: locate.field(field), own: true };
  const ruleId = /failed to compile (\S+):/.exec(text)?.[1];
  const rule = rules.find((candidate) => candidate.label === ruleId);
  if (rule !== undefined) return { where: rule.where, own: true };
  // Evaluation errors do not name their rule; with a single rule there is no doubt which.
  const only = rules.length === 1 ? rules[0] : undefined;
  if (only !== undefined) return { where: only.where, own: true };
  return { where: locate.message(message), own: false };
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
}
