// The fields of a contract's answers, derived from its message type alone, as the drift monitor
// profiles them and the rollout's shadow comparison compares them: numbers (a quantile sketch; a
// tolerance), enums, booleans and fields with an `in` rule (a frequency table; exact), strings and
// bytes (a length sketch; exact), lists and maps (a size sketch; exact), well-known message types
// (Timestamp, Struct, …: presence; exact). Nested messages are flattened ("address.city") up to
// MAX_DEPTH. Shared by two stages, so it lives with the contracts they both read.
import { type DescField, type DescMessage, getOption, ScalarType } from "@bufbuild/protobuf";
import { field as fieldRulesExt } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

export type FieldKind = "numeric" | "categorical" | "length" | "size" | "presence";

export interface FieldSpec {
  /** Proto names joined by dots: the label of the field in metrics and reports. */
  readonly path: string;
  readonly kind: FieldKind;
  /** Per level, the JSON keys the value may be under: proto name and JSON name. */
  readonly keys: readonly (readonly string[])[];
}

/** Nested messages deeper than this are profiled by their presence only. */
const MAX_DEPTH = 3;

/** Up to `limit` fields of `message`, in schema order, depth first. */
export function profiledFields(message: DescMessage, limit: number): FieldSpec[] {
  const specs: FieldSpec[] = [];
  const visit = (parent: DescMessage, prefix: string, keys: readonly (readonly string[])[], depth: number): void => {
    for (const field of parent.fields) {
      if (specs.length >= limit) return;
      const path = prefix === "" ? field.name : `${prefix}.${field.name}`;
      const fieldKeys = [...keys, field.name === field.jsonName ? [field.name] : [field.name, field.jsonName]];
      if (field.fieldKind === "message" && depth < MAX_DEPTH && !isWellKnown(field.message)) {
        visit(field.message, path, fieldKeys, depth + 1);
      } else {
        specs.push({ path, kind: kindOf(field), keys: fieldKeys });
      }
    }
  };
  visit(message, "", [], 1);
  return specs;
}

function kindOf(field: DescField): FieldKind {
  switch (field.fieldKind) {
    case "list":
    case "map":
      return "size";
    case "message":
      return "presence";
    case "enum":
      return "categorical";
    case "scalar":
      if (field.scalar === ScalarType.BOOL || hasInList(field)) return "categorical";
      if (field.scalar === ScalarType.STRING || field.scalar === ScalarType.BYTES) return "length";
      return "numeric";
  }
}

/** An `in` rule (string.in, int32.in, double.in, …) makes a field's values a closed set. */
function hasInList(field: DescField): boolean {
  const rules = getOption(field, fieldRulesExt).type;
  if (rules.case === undefined) return false;
  return "in" in rules.value && rules.value.in.length > 0;
}

function isWellKnown(message: DescMessage): boolean {
  return message.typeName.startsWith("google.protobuf.");
}

/** The value under one of each level's keys (proto name or JSON name), or undefined. */
export function valueAt(root: unknown, keys: readonly (readonly string[])[]): unknown {
  let value = root;
  for (const names of keys) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
    const object = value as Record<string, unknown>;
    let next: unknown;
    for (const name of names) {
      next = object[name];
      if (next !== undefined) break;
    }
    value = next;
  }
  return value;
}
