// Strict JSON checks against a contract message's descriptor. Protobuf's JSON reader is lenient
// where a contract must not be (it accepts "1.5" for a double, null for any field, and with
// ignoreUnknownFields silently drops renamed fields), and it stops at the first problem, so the
// payload is walked here first: every problem becomes a violation with its JSON path, and the
// offending value is dropped from a copy so protovalidate can still check everything else.
import { type DescEnum, type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";

export interface ContractViolation {
  /** JSON path in the response body, e.g. "choices[0].message.content<json>.score"; "$" = root. */
  readonly field: string;
  /** Rule id: protovalidate's ("double.gte_lte", a CEL rule's id) or the guard's ("json.*", "payload.*"). */
  readonly rule: string;
  readonly message: string;
}

/** Collects violations up to a cap and counts the rest. */
export class ViolationSink {
  readonly list: ContractViolation[] = [];
  total = 0;

  constructor(readonly max: number) {}

  add(field: string, rule: string, message: string): void {
    this.total++;
    if (this.list.length < this.max) this.list.push({ field: field === "" ? "$" : field, rule, message });
  }
}

export interface Strictness {
  readonly allowUnknownFields: boolean;
  readonly allowNumberStrings: boolean;
  readonly allowNonFiniteStrings: boolean;
  readonly allowNull: boolean;
  readonly allowEnumNumbers: boolean;
}

export const STRICT: Strictness = Object.freeze({
  allowUnknownFields: false,
  allowNumberStrings: false,
  allowNonFiniteStrings: false,
  allowNull: false,
  allowEnumNumbers: false,
});

/** Returned for a value that must not reach protobuf's JSON reader. */
const DROP = Symbol("drop");
type Checked = unknown | typeof DROP;

const fieldIndex = new WeakMap<DescMessage, Map<string, DescField>>();

function fieldsByJsonKey(message: DescMessage): Map<string, DescField> {
  let index = fieldIndex.get(message);
  if (index === undefined) {
    index = new Map();
    for (const field of message.fields) {
      index.set(field.name, field);
      index.set(field.jsonName, field);
    }
    fieldIndex.set(message, index);
  }
  return index;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function jsonTypeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

const NON_FINITE = new Set(["NaN", "Infinity", "-Infinity"]);
const NUMERIC_STRING = /^\s*-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;
const INTEGER_STRING = /^-?\d+$/;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const DURATION = /^-?\d+(\.\d{1,9})?s$/;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
const FLOAT_MAX = 3.4028234663852886e38;

const INT_RANGES: Partial<Record<ScalarType, readonly [number, number]>> = {
  [ScalarType.INT32]: [-2147483648, 2147483647],
  [ScalarType.SINT32]: [-2147483648, 2147483647],
  [ScalarType.SFIXED32]: [-2147483648, 2147483647],
  [ScalarType.UINT32]: [0, 4294967295],
  [ScalarType.FIXED32]: [0, 4294967295],
};
const INT64_TYPES = new Set([
  ScalarType.INT64,
  ScalarType.SINT64,
  ScalarType.SFIXED64,
  ScalarType.UINT64,
  ScalarType.FIXED64,
]);
const UNSIGNED = new Set([ScalarType.UINT32, ScalarType.FIXED32, ScalarType.UINT64, ScalarType.FIXED64]);

const WRAPPERS: Readonly<Record<string, ScalarType>> = {
  "google.protobuf.DoubleValue": ScalarType.DOUBLE,
  "google.protobuf.FloatValue": ScalarType.FLOAT,
  "google.protobuf.Int64Value": ScalarType.INT64,
  "google.protobuf.UInt64Value": ScalarType.UINT64,
  "google.protobuf.Int32Value": ScalarType.INT32,
  "google.protobuf.UInt32Value": ScalarType.UINT32,
  "google.protobuf.BoolValue": ScalarType.BOOL,
  "google.protobuf.StringValue": ScalarType.STRING,
  "google.protobuf.BytesValue": ScalarType.BYTES,
};
/** Well-known types whose JSON form is free-form: protobuf's reader is the judge for them. */
const FREE_FORM = new Set([
  "google.protobuf.Struct",
  "google.protobuf.Value",
  "google.protobuf.ListValue",
  "google.protobuf.Any",
]);

function scalarName(scalar: ScalarType): string {
  return ScalarType[scalar].toLowerCase();
}

export class JsonChecker {
  /** Paths already reported here; the dropped value must not be reported again as "missing". */
  readonly flagged = new Set<string>();

  constructor(
    private readonly strictness: Strictness,
    private readonly sink: ViolationSink,
  ) {}

  #report(path: string, rule: string, message: string): void {
    this.flagged.add(path === "" ? "$" : path);
    this.sink.add(path, rule, message);
  }

  /** Checks an object against `message`; returns the value to hand to protobuf's JSON reader. */
  message(value: unknown, message: DescMessage, path: string): Checked {
    const wellKnown = this.wellKnown(value, message, path);
    if (wellKnown !== undefined) return wellKnown.value;
    if (!isObject(value)) {
      this.#report(path, "json.wrong_type", `expected an object (${message.name}), got ${jsonTypeOf(value)}`);
      return DROP;
    }
    let copy: Record<string, unknown> | undefined;
    for (const key in value) {
      const child = value[key];
      const childPath = path === "" ? key : `${path}.${key}`;
      const field = this.fieldOf(message, key, childPath);
      const checked: Checked = field === undefined ? DROP : this.field(child, field, childPath);
      if (checked !== child) {
        copy ??= { ...value };
        if (checked === DROP) delete copy[key];
        else copy[key] = checked;
      }
    }
    return copy ?? value;
  }

  /** Checks the value of one field; `path` is already the field's path. */
  field(value: unknown, field: DescField, path: string): Checked {
    if (value === null) return this.nullValue(field.fieldKind === "message" ? field.message.typeName : "", path);
    switch (field.fieldKind) {
      case "scalar":
        return this.scalar(value, field.scalar, path);
      case "enum":
        return this.enumValue(value, field.enum, path);
      case "message":
        return this.message(value, field.message, path);
      case "list": {
        if (!Array.isArray(value)) {
          this.#report(path, "json.wrong_type", `expected an array, got ${jsonTypeOf(value)}`);
          return DROP;
        }
        let copy: unknown[] | undefined;
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          const checked = this.listItem(item, field, `${path}[${i}]`);
          if (checked !== item) {
            copy ??= value.slice(0, i);
            if (checked !== DROP) copy.push(checked);
          } else if (copy !== undefined) copy.push(item);
        }
        return copy ?? value;
      }
      case "map": {
        if (!isObject(value)) {
          this.#report(path, "json.wrong_type", `expected an object (map), got ${jsonTypeOf(value)}`);
          return DROP;
        }
        let copy: Record<string, unknown> | undefined;
        for (const key in value) {
          const item = value[key];
          const itemPath = `${path}[${JSON.stringify(key)}]`;
          let checked: Checked;
          if (!this.mapKeyOk(key, field.mapKey)) {
            this.#report(itemPath, "json.wrong_type", `map key "${key}" is not a valid ${scalarName(field.mapKey)}`);
            checked = DROP;
          } else if (item === null) checked = this.nullItem(itemPath);
          else if (field.mapKind === "scalar") checked = this.scalar(item, field.scalar, itemPath);
          else if (field.mapKind === "enum") checked = this.enumValue(item, field.enum, itemPath);
          else checked = this.message(item, field.message, itemPath);
          if (checked !== item) {
            copy ??= { ...value };
            if (checked === DROP) delete copy[key];
            else copy[key] = checked;
          }
        }
        return copy ?? value;
      }
    }
  }

  /**
   * The field a JSON object key names in `message` (by proto or JSON name). An unknown key is
   * reported at `path` (the key's path) unless unknown fields are allowed; either way it is undefined.
   */
  fieldOf(message: DescMessage, key: string, path: string): DescField | undefined {
    const field = fieldsByJsonKey(message).get(key);
    if (field === undefined && !this.strictness.allowUnknownFields) {
      this.#report(path, "json.unknown_field", `unknown field "${key}" (not in ${message.typeName})`);
    }
    return field;
  }

  /** Checks one item of a repeated field; `path` is already the item's path. */
  listItem(item: unknown, field: DescField & { fieldKind: "list" }, path: string): Checked {
    if (item === null) return this.nullItem(path);
    if (field.listKind === "scalar") return this.scalar(item, field.scalar, path);
    if (field.listKind === "enum") return this.enumValue(item, field.enum, path);
    return this.message(item, field.message, path);
  }

  private nullValue(messageType: string, path: string): Checked {
    // null is a value of google.protobuf.Value; everywhere else protobuf reads it as "absent".
    if (messageType === "google.protobuf.Value") return null;
    if (!this.strictness.allowNull)
      this.#report(path, "json.null", "null is not allowed (the field must be omitted or have a value)");
    return DROP;
  }

  private nullItem(path: string): Checked {
    this.#report(path, "json.null", "null is not allowed in a list or map");
    return DROP;
  }

  private mapKeyOk(key: string, scalar: ScalarType): boolean {
    if (scalar === ScalarType.STRING) return true;
    if (scalar === ScalarType.BOOL) return key === "true" || key === "false";
    return INTEGER_STRING.test(key);
  }

  private wellKnown(value: unknown, message: DescMessage, path: string): { value: Checked } | undefined {
    const typeName = message.typeName;
    if (!typeName.startsWith("google.protobuf.")) return undefined;
    if (FREE_FORM.has(typeName)) return { value };
    const wrapped = WRAPPERS[typeName];
    if (wrapped !== undefined) return { value: this.scalar(value, wrapped, path) };
    const format =
      typeName === "google.protobuf.Timestamp"
        ? { pattern: TIMESTAMP, what: 'an RFC 3339 timestamp such as "2025-01-31T12:00:00Z"' }
        : typeName === "google.protobuf.Duration"
          ? { pattern: DURATION, what: 'a duration such as "1.5s"' }
          : typeName === "google.protobuf.FieldMask"
            ? { pattern: /^[\w.,]*$/, what: "a field mask" }
            : undefined;
    if (format === undefined) return undefined;
    if (typeof value !== "string") {
      this.#report(path, "json.wrong_type", `expected ${format.what}, got ${jsonTypeOf(value)}`);
      return { value: DROP };
    }
    if (!format.pattern.test(value) || (typeName === "google.protobuf.Timestamp" && Number.isNaN(Date.parse(value)))) {
      this.#report(path, "json.wrong_format", `expected ${format.what}`);
      return { value: DROP };
    }
    return { value };
  }

  private scalar(value: unknown, scalar: ScalarType, path: string): Checked {
    switch (scalar) {
      case ScalarType.STRING:
        return typeof value === "string" ? value : this.wrongType(path, "a string", value);
      case ScalarType.BOOL:
        return typeof value === "boolean" ? value : this.wrongType(path, "a boolean", value);
      case ScalarType.BYTES:
        if (typeof value !== "string") return this.wrongType(path, "base64 bytes (a string)", value);
        if (!BASE64.test(value)) {
          this.#report(path, "json.wrong_format", "expected base64");
          return DROP;
        }
        return value;
      case ScalarType.DOUBLE:
      case ScalarType.FLOAT:
        return this.floating(value, scalar, path);
      default:
        return this.integer(value, scalar, path);
    }
  }

  private floating(value: unknown, scalar: ScalarType, path: string): Checked {
    if (typeof value === "number") {
      // A literal beyond the double range (6e68034292, as grammar-constrained LLMs write) parses
      // to Infinity: reported here with its field, not later as protobuf's reader failing on "$".
      if (!Number.isFinite(value)) {
        this.#report(
          path,
          "json.out_of_range",
          `a number beyond ±1.8e308 (read as ${value}) does not fit ${scalarName(scalar)}`,
        );
        return DROP;
      }
      if (scalar === ScalarType.FLOAT && Math.abs(value) > FLOAT_MAX) {
        this.#report(path, "json.out_of_range", `${value} does not fit a float`);
        return DROP;
      }
      return value;
    }
    if (typeof value !== "string") return this.wrongType(path, "a number", value);
    if (NON_FINITE.has(value)) {
      if (this.strictness.allowNonFiniteStrings) return value;
      this.#report(path, "json.non_finite", `"${value}" is not a finite number`);
      return DROP;
    }
    return this.numberString(value, path, NUMERIC_STRING);
  }

  private integer(value: unknown, scalar: ScalarType, path: string): Checked {
    const is64 = INT64_TYPES.has(scalar);
    if (typeof value === "string") {
      if (NON_FINITE.has(value)) {
        this.#report(path, "json.non_finite", `"${value}" is not a finite number (and not an integer)`);
        return DROP;
      }
      // The proto3 JSON mapping writes 64-bit integers as strings: that is the canonical form.
      if (is64) return INTEGER_STRING.test(value) ? value : this.wrongType(path, "an integer", value);
      const checked = this.numberString(value, path, INTEGER_STRING);
      if (checked === DROP) return DROP;
      return this.integer(Number(value), scalar, path) === DROP ? DROP : value;
    }
    if (typeof value !== "number") return this.wrongType(path, "an integer", value);
    if (!Number.isInteger(value)) {
      this.#report(path, "json.wrong_type", `expected an integer, got ${value}`);
      return DROP;
    }
    const range = INT_RANGES[scalar];
    const outOfRange = range !== undefined ? value < range[0] || value > range[1] : UNSIGNED.has(scalar) && value < 0;
    if (outOfRange || (is64 && !Number.isSafeInteger(value))) {
      this.#report(path, "json.out_of_range", `${value} does not fit ${scalarName(scalar)}`);
      return DROP;
    }
    return value;
  }

  private numberString(value: string, path: string, pattern: RegExp): Checked {
    if (!pattern.test(value)) return this.wrongType(path, "a number", value);
    if (this.strictness.allowNumberStrings) return value;
    this.#report(path, "json.number_string", `number sent as a string ("${clip(value)}")`);
    return DROP;
  }

  private enumValue(value: unknown, descEnum: DescEnum, path: string): Checked {
    if (typeof value === "string") {
      if (descEnum.values.some((candidate) => candidate.name === value)) return value;
      this.#report(path, "json.unknown_enum_value", `"${clip(value)}" is not a value of ${descEnum.typeName}`);
      return DROP;
    }
    if (typeof value === "number" && Number.isInteger(value)) {
      if (this.strictness.allowEnumNumbers) return value;
      this.#report(
        path,
        "json.enum_number",
        `enum ${descEnum.typeName} sent as a number (${value}); expected its name`,
      );
      return DROP;
    }
    return this.wrongType(path, `a ${descEnum.name} name`, value);
  }

  private wrongType(path: string, expected: string, value: unknown): Checked {
    this.#report(path, "json.wrong_type", `expected ${expected}, got ${jsonTypeOf(value)}`);
    return DROP;
  }
}

export function isDropped(value: Checked): boolean {
  return value === DROP;
}

function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
