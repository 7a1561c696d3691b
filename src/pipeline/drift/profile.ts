// What one model version answered on one route, and what it was asked: a profile per contract
// field (src/contracts/fields.ts) plus the input profile the complexity stage's estimate gives (prompt tokens,
// cost, tier). Every part is a sketch or a bounded table, so a profile's memory is bounded
// whatever the traffic (docs/drift.md, "Memory"), and two profiles of one version merge.
import type { FieldKind, FieldSpec } from "../../contracts/fields.js";
import { FrequencyTable, type SerialisedFrequencies } from "./frequency.js";
import { QuantileSketch, type SerialisedSketch, type SketchOptions } from "./sketch.js";

export interface ProfileOptions extends SketchOptions {
  readonly maxCategories: number;
}

/** One field's values: a sketch (numeric, length, size) or a table (categorical); presence only has neither. */
export class FieldProfile {
  /** Observations where the field was missing, null or of an unreadable type. */
  missing = 0;
  /** All observations, missing ones included. */
  total = 0;
  readonly sketch: QuantileSketch | undefined;
  readonly table: FrequencyTable | undefined;

  constructor(
    readonly name: string,
    readonly kind: FieldKind,
    options: ProfileOptions,
  ) {
    this.sketch = kind === "numeric" || kind === "length" || kind === "size" ? new QuantileSketch(options) : undefined;
    this.table = kind === "categorical" ? new FrequencyTable(options.maxCategories) : undefined;
  }

  /** Present values (the sketch's or table's count). */
  get present(): number {
    return this.total - this.missing;
  }

  /** Records one value as the JSON reader gave it; undefined is a missing field. */
  observe(value: unknown): void {
    this.total++;
    const reading = readAs(this.kind, value);
    if (reading === undefined) this.missing++;
    else if (typeof reading === "number") this.sketch?.add(reading);
    else this.table?.add(reading);
  }

  merge(other: FieldProfile): void {
    this.missing += other.missing;
    this.total += other.total;
    if (this.sketch !== undefined && other.sketch !== undefined) this.sketch.merge(other.sketch);
    if (this.table !== undefined && other.table !== undefined) this.table.merge(other.table);
  }

  toJSON(): SerialisedField {
    return {
      name: this.name,
      kind: this.kind,
      missing: this.missing,
      total: this.total,
      ...(this.sketch === undefined ? {} : { sketch: this.sketch.toJSON() }),
      ...(this.table === undefined ? {} : { table: this.table.toJSON() }),
    };
  }

  static fromJSON(data: SerialisedField, options: ProfileOptions): FieldProfile {
    const field = new FieldProfile(data.name, data.kind, options);
    field.missing = data.missing;
    field.total = data.total;
    if (data.sketch !== undefined) field.sketch?.merge(QuantileSketch.fromJSON(data.sketch));
    if (data.table !== undefined) field.table?.merge(FrequencyTable.fromJSON(data.table));
    return field;
  }
}

export interface SerialisedField {
  readonly name: string;
  readonly kind: FieldKind;
  readonly missing: number;
  readonly total: number;
  readonly sketch?: SerialisedSketch;
  readonly table?: SerialisedFrequencies;
}

/** The number a sketch takes, the category a table takes, or undefined for a missing or unreadable value. */
function readAs(kind: FieldKind, value: unknown): number | string | undefined {
  if (value === undefined || value === null) return undefined;
  switch (kind) {
    case "numeric": {
      // 64-bit integers are strings in canonical proto3 JSON.
      const number = typeof value === "string" ? Number(value) : value;
      return typeof number === "number" && Number.isFinite(number) ? number : undefined;
    }
    case "categorical":
      return typeof value === "string" || typeof value === "number" || typeof value === "boolean"
        ? String(value)
        : undefined;
    case "length":
      return typeof value === "string" ? value.length : undefined;
    case "size":
      if (Array.isArray(value)) return value.length;
      return typeof value === "object" ? Object.keys(value).length : undefined;
    case "presence":
      return typeof value === "object" || typeof value === "string" ? "present" : undefined;
  }
}

/** The input side of a version's traffic, as the complexity stage estimated it. */
export const INPUT_FIELDS = [
  { path: "input.prompt_tokens", kind: "numeric" },
  { path: "input.cost", kind: "numeric" },
  { path: "input.tier", kind: "categorical" },
] as const satisfies readonly { readonly path: string; readonly kind: FieldKind }[];

export interface InputReading {
  readonly promptTokens: number | undefined;
  readonly cost: number | undefined;
  readonly tier: string | undefined;
}

export class VersionProfile {
  /** Payloads observed (a response with several choices gives several). */
  samples = 0;
  readonly fields: FieldProfile[];
  readonly input: FieldProfile[];

  constructor(
    readonly version: string,
    specs: readonly Pick<FieldSpec, "path" | "kind">[],
    readonly options: ProfileOptions,
  ) {
    this.fields = specs.map((spec) => new FieldProfile(spec.path, spec.kind, options));
    this.input = INPUT_FIELDS.map((spec) => new FieldProfile(spec.path, spec.kind, options));
  }

  /** One payload: `read(i)` reads the i-th field of the specs this profile was made from. */
  observePayload(read: (index: number) => unknown): void {
    this.samples++;
    for (let index = 0; index < this.fields.length; index++) this.fields[index]?.observe(read(index));
  }

  observeInput(input: InputReading): void {
    const [tokens, cost, tier] = this.input;
    tokens?.observe(input.promptTokens);
    cost?.observe(input.cost);
    tier?.observe(input.tier);
  }

  merge(other: VersionProfile): void {
    this.samples += other.samples;
    mergeByName(this.fields, other.fields);
    mergeByName(this.input, other.input);
  }

  toJSON(): SerialisedProfile {
    return {
      version: this.version,
      samples: this.samples,
      fields: this.fields.map((field) => field.toJSON()),
      input: this.input.map((field) => field.toJSON()),
    };
  }

  static fromJSON(data: SerialisedProfile, options: ProfileOptions): VersionProfile {
    const profile = new VersionProfile(
      data.version,
      data.fields.map((field) => ({ path: field.name, kind: field.kind })),
      options,
    );
    profile.samples = data.samples;
    mergeByName(
      profile.fields,
      data.fields.map((field) => FieldProfile.fromJSON(field, options)),
    );
    mergeByName(
      profile.input,
      data.input.map((field) => FieldProfile.fromJSON(field, options)),
    );
    return profile;
  }
}

export interface SerialisedProfile {
  readonly version: string;
  readonly samples: number;
  readonly fields: readonly SerialisedField[];
  readonly input: readonly SerialisedField[];
}

/** Merges fields of the same name and kind; a field the other side does not have is left alone. */
function mergeByName(mine: readonly FieldProfile[], theirs: readonly FieldProfile[]): void {
  for (const field of mine) {
    const match = theirs.find((other) => other.name === field.name && other.kind === field.kind);
    if (match !== undefined) field.merge(match);
  }
}
