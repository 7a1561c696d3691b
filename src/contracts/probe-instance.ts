// The synthetic message the rule check evaluates every contract on: every field set (lists and
// maps with one entry), so every rule runs once at startup.
import { type DescField, type DescMessage, type JsonValue, ScalarType } from "@bufbuild/protobuf";

/** A JSON instance with every field set (lists and maps with one entry), so every rule runs. */
export function probeJson(message: DescMessage, depth: number): JsonValue {
  const special = probeWellKnown(message.typeName);
  if (special !== undefined) return special;
  const out: Record<string, JsonValue> = {};
  if (depth > 3) return out;
  for (const field of message.fields) {
    if (field.oneof !== undefined && field.oneof.fields[0] !== field) continue;
    const value = probeValue(field, depth);
    if (value === undefined) continue;
    out[field.jsonName] =
      field.fieldKind === "list" ? [value] : field.fieldKind === "map" ? { [probeMapKey(field)]: value } : value;
  }
  return out;
}

function probeMapKey(field: DescField & { fieldKind: "map" }): string {
  return field.mapKey === ScalarType.BOOL ? "true" : field.mapKey === ScalarType.STRING ? "k" : "1";
}

function probeValue(field: DescField, depth: number): JsonValue | undefined {
  switch (field.fieldKind) {
    case "scalar":
      return probeScalar(field.scalar);
    case "enum":
      return field.enum.values.find((value) => value.number !== 0)?.name ?? field.enum.values[0]?.name ?? 0;
    case "message":
      return depth >= 3 ? undefined : probeJson(field.message, depth + 1);
    case "list":
      if (field.listKind === "scalar") return probeScalar(field.scalar);
      if (field.listKind === "enum") return field.enum.values[0]?.name ?? 0;
      return depth >= 3 ? undefined : probeJson(field.message, depth + 1);
    case "map":
      if (field.mapKind === "scalar") return probeScalar(field.scalar);
      if (field.mapKind === "enum") return field.enum.values[0]?.name ?? 0;
      return depth >= 3 ? undefined : probeJson(field.message, depth + 1);
  }
}

function probeScalar(scalar: ScalarType): JsonValue {
  switch (scalar) {
    case ScalarType.STRING:
      return "x";
    case ScalarType.BOOL:
      return true;
    case ScalarType.BYTES:
      return "AQ==";
    default:
      return 1;
  }
}

function probeWellKnown(typeName: string): JsonValue | undefined {
  switch (typeName) {
    case "google.protobuf.Timestamp":
      return new Date().toISOString();
    case "google.protobuf.Duration":
      return "1s";
    case "google.protobuf.FieldMask":
      return "x";
    case "google.protobuf.Struct":
      return {};
    case "google.protobuf.Value":
      return 1;
    case "google.protobuf.ListValue":
      return [];
    case "google.protobuf.Any":
      return {};
    case "google.protobuf.StringValue":
      return "x";
    case "google.protobuf.BoolValue":
      return true;
    case "google.protobuf.BytesValue":
      return "AQ==";
    case "google.protobuf.DoubleValue":
    case "google.protobuf.FloatValue":
    case "google.protobuf.Int32Value":
    case "google.protobuf.UInt32Value":
    case "google.protobuf.Int64Value":
    case "google.protobuf.UInt64Value":
      return 1;
    default:
      return undefined;
  }
}
