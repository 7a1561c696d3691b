// One bound contract, ready to check bodies: payload extraction → strict JSON walk →
// protobuf JSON reader → protovalidate. Pure and synchronous; the stage and the CLI share it.
import { type DescField, type DescMessage, fromJson, type Message, type Registry } from "@bufbuild/protobuf";
import type { Path } from "@bufbuild/protobuf/reflect";
import type { Validator, Violation } from "@bufbuild/protovalidate";
import {
  type ContractViolation,
  isDropped,
  JsonChecker,
  STRICT,
  type Strictness,
  ViolationSink,
} from "./json-check.js";
import { leafSchema } from "./leaf-schema.js";
import { extractPayloads, type Payload, type PayloadStep, parsePayloadPath } from "./payload.js";

export interface ContractSpec {
  readonly message: DescMessage;
  /** Payload path, see payload.ts; "$" is the whole body. */
  readonly payload?: string;
  /** Name of the contract field each payload is the value of (for non-object payloads). */
  readonly wrapField?: string;
  readonly strictness?: Strictness;
  readonly maxViolations?: number;
  readonly maxPayloads?: number;
}

export interface CheckResult {
  readonly valid: boolean;
  /** The parsed body, when it was JSON (the stage reads the model name and version from it). */
  readonly body: unknown;
  /**
   * The payloads the check found in the body (JSON text inside a string already parsed), for the
   * drift monitor to profile without walking and parsing the body again; empty when not JSON.
   */
  readonly payloads: readonly Payload[];
  /** At most maxViolations, in body order (JSON problems of a payload before its rule violations). */
  readonly violations: readonly ContractViolation[];
  /** All violations found, including those beyond the cap. */
  readonly total: number;
}

/**
 * One value of a payload checked on its own, as the incremental checker (incremental.ts) meets it
 * while the payload's text streams in: a singular field's value, or one item of a repeated field.
 */
export interface Leaf {
  /** The message type that holds the field: the contract message or one nested in it. */
  readonly parent: DescMessage;
  readonly field: DescField;
  /** When the value is one item of the repeated `field`: the item's index; otherwise undefined. */
  readonly index: number | undefined;
  /** The value's path as the strict JSON walk renders it (object keys as written). */
  readonly jsonPath: string;
  /** The field's path as rule violations render it (proto names; an item's index is appended). */
  readonly rulePath: string;
  /** The payload's path: where a value protobuf's JSON reader rejects is reported (json.invalid). */
  readonly payloadPath: string;
  /** False below a field protovalidate skips (ignore: IGNORE_ALWAYS): the JSON checks only. */
  readonly rules: boolean;
}

/**
 * "violated": a violation was added; "passed": nothing the final check would report on this value
 * by itself; "unsettled": a rule failed to evaluate, so the value must wait for the final check.
 */
export type LeafVerdict = "passed" | "violated" | "unsettled";

/** Rules about the whole field or message that one value on its own cannot decide. */
const WHOLE_FIELD_RULES = new Set(["required", "repeated.min_items", "repeated.max_items", "repeated.unique"]);

export class Contract {
  readonly name: string;
  readonly #steps: readonly PayloadStep[];
  readonly #wrap: DescField | undefined;
  readonly #strictness: Strictness;
  readonly #maxViolations: number;
  readonly #maxPayloads: number;

  constructor(
    readonly spec: ContractSpec,
    private readonly validator: Validator,
    private readonly registry: Registry,
  ) {
    this.name = spec.message.typeName;
    const parsed = parsePayloadPath(spec.payload ?? "$");
    if (!parsed.ok) throw new Error(parsed.error);
    this.#steps = parsed.steps;
    if (spec.wrapField !== undefined) {
      const field = spec.message.fields.find(
        (candidate) => candidate.name === spec.wrapField || candidate.jsonName === spec.wrapField,
      );
      if (field === undefined) throw new Error(`${this.name} has no field "${spec.wrapField}"`);
      this.#wrap = field;
    }
    this.#strictness = spec.strictness ?? STRICT;
    this.#maxViolations = spec.maxViolations ?? 20;
    this.#maxPayloads = spec.maxPayloads ?? 1024;
  }

  /** The strict JSON checks in force (the incremental checker applies the same). */
  get strictness(): Strictness {
    return this.#strictness;
  }

  /** The field each payload is the value of (spec.wrapField), resolved; undefined without one. */
  get wrap(): DescField | undefined {
    return this.#wrap;
  }

  get maxViolations(): number {
    return this.#maxViolations;
  }

  /**
   * Checks one value on its own against what the final check (checkValue) would say about it: its
   * JSON type through `checker` (whose sink is `sink`), then the field's own protovalidate rules
   * on a message holding only this value (for an item: only this item) — of a one-field type
   * made for the field (leaf-schema.ts), so that only its rules run, or else of the parent type.
   * Violations of rules that need the whole field or message (required, min/max items, unique,
   * message-level CEL) are dropped: a partial message would fail them falsely. The cost is one
   * protobuf JSON read of a one-field object and one validation of a one-field message, both
   * planned once per type (about 1 µs for a scalar with a range rule).
   */
  checkLeaf(value: unknown, leaf: Leaf, checker: JsonChecker, sink: ViolationSink): LeafVerdict {
    const { field, index } = leaf;
    const before = sink.total;
    const cleaned =
      index !== undefined && field.fieldKind === "list"
        ? checker.listItem(value, field, leaf.jsonPath)
        : checker.field(value, field, leaf.jsonPath);
    if (sink.total !== before) return "violated";
    if (isDropped(cleaned) || !leaf.rules) return "passed";
    // The field alone in a message type of its own (leaf-schema.ts), or else in its parent's.
    const schema = leafSchema(leaf.parent, field) ?? leaf.parent;
    let message: Message;
    try {
      const json = { [field.jsonName]: index === undefined ? cleaned : [cleaned] };
      message = fromJson(schema, json as Parameters<typeof fromJson>[1], {
        ignoreUnknownFields: true,
        registry: this.registry,
      });
    } catch (error) {
      sink.add(leaf.payloadPath, "json.invalid", (error as Error).message);
      return "violated";
    }
    const result = this.validator.validate(schema, message);
    if (result.kind === "valid") return "passed";
    if (result.kind === "error") return "unsettled";
    const path = index === undefined ? leaf.rulePath : `${leaf.rulePath}[${index}]`;
    let violated = false;
    for (const violation of result.violations) {
      const [head, sub] = violation.field;
      if (head?.kind !== "field" || head.parent !== schema || head.number !== field.number) continue;
      if (WHOLE_FIELD_RULES.has(violation.ruleId)) continue;
      // A singular value's own rules are on [field]; an item's on [field, item]. A rule on the
      // list itself ([field] for a repeated field: its CEL, its size) needs the whole list.
      if (index === undefined ? violation.field.length !== 1 : violation.field.length !== 2 || sub?.kind !== "list_sub")
        continue;
      sink.add(path, violation.ruleId === "" ? "cel" : violation.ruleId, violation.message);
      violated = true;
    }
    return violated ? "violated" : "passed";
  }

  checkText(text: string): CheckResult {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (error) {
      return this.notJson((error as Error).message);
    }
    return this.checkValue(body);
  }

  /** The verdict for a body that is not JSON at all (an HTML error page, prose, an empty body). */
  notJson(syntaxError: string): CheckResult {
    const sink = new ViolationSink(this.#maxViolations);
    sink.add("", "json.syntax", `body is not JSON: ${syntaxError}`);
    return { valid: false, body: undefined, payloads: [], violations: sink.list, total: sink.total };
  }

  checkValue(body: unknown): CheckResult {
    const sink = new ViolationSink(this.#maxViolations);
    const { payloads, overflow } = extractPayloads(body, this.#steps, this.#maxPayloads);
    for (const payload of payloads) {
      if ("problem" in payload) sink.add(payload.path, payload.problem.rule, payload.problem.message);
      else this.#checkPayload(payload.value, payload.path, sink);
    }
    if (overflow) sink.add("", "payload.too_many", `more than ${this.#maxPayloads} payloads in one response`);
    return { valid: sink.total === 0, body, payloads, violations: sink.list, total: sink.total };
  }

  #checkPayload(value: unknown, path: string, sink: ViolationSink): void {
    const checker = new JsonChecker(this.#strictness, sink);
    let cleaned: unknown;
    if (this.#wrap === undefined) {
      cleaned = checker.message(value, this.spec.message, path);
    } else {
      const inner = checker.field(value, this.#wrap, path);
      cleaned = isDropped(inner) ? {} : { [this.#wrap.name]: inner };
    }
    if (isDropped(cleaned)) return;
    let message: Message;
    try {
      message = fromJson(this.spec.message, cleaned as Parameters<typeof fromJson>[1], {
        ignoreUnknownFields: true,
        registry: this.registry,
      });
    } catch (error) {
      sink.add(path, "json.invalid", (error as Error).message);
      return;
    }
    const result = this.validator.validate(this.spec.message, message);
    if (result.kind === "valid") return;
    if (result.kind === "error") {
      // A rule that fails to evaluate on this data (not at startup) still blocks the body: an
      // unverified body must not be reported as conforming.
      sink.add(path, "rule.error", result.error.message);
      return;
    }
    for (const violation of result.violations) {
      const field = this.#violationPath(path, violation);
      if (checker.flagged.has(field === "" ? "$" : field)) continue;
      sink.add(field, violation.ruleId === "" ? "cel" : violation.ruleId, violation.message);
    }
  }

  #violationPath(base: string, violation: Violation): string {
    return appendPath(base, violation.field, this.#wrap);
  }
}

/** Renders a protovalidate field path under a payload path; the wrap field is the payload itself. */
export function appendPath(base: string, path: Path, wrap: DescField | undefined): string {
  let out = base;
  path.forEach((item, index) => {
    switch (item.kind) {
      case "field":
        if (index === 0 && item === wrap) return;
        out = out === "" ? item.name : `${out}.${item.name}`;
        return;
      case "list_sub":
        out += `[${item.index}]`;
        return;
      case "map_sub":
        out += `[${JSON.stringify(typeof item.key === "bigint" ? item.key.toString() : item.key)}]`;
        return;
      case "extension":
        out += `.(${item.typeName})`;
        return;
      case "oneof":
        return;
    }
  });
  return out;
}
