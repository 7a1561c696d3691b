// Checks a contract payload that is JSON text (a payload path ending in <json>) while the text
// streams in, piece by piece, so that under enforce a violating value never reaches the client.
// Each value is checked as soon as it is complete: its JSON type, an unknown key (as soon as the
// key is complete, before its value), and the field's own protovalidate rules (Contract.checkLeaf,
// on a one-field message type per field: leaf-schema.ts). Rules that need the whole message
// (required, min/max items, message-level CEL, oneof) are left to the final Contract.checkValue
// on the assembled document: nothing is reported here that that check would not report too (but
// see "Limits" below).
//
// settledBytes is the stream stage's release frontier: the bytes up to it are whitespace, a fence
// line, structural tokens, keys that passed and values that passed. It stops for good at the
// first value that is not checked here (a map, Struct, Value, ListValue or Any: their rules are
// the final check's), at a violation, and when the text fails to be JSON.
//
// Limits. (1) With a duplicate key JSON.parse keeps the last value, the checks here judge each
// one: an earlier violating value overridden by a later conforming one is reported here and not
// by the final check. (2) When the text later turns out not to be JSON at all, or protobuf's JSON
// reader rejects the assembled message (two members of one oneof), the final check reports that
// (json.syntax, json.invalid) instead of the violations reported here; both say "violated".
// (3) A field-level CEL rule reading `now` is evaluated earlier here than in the final check.
import { type DescField, type DescMessage, getOption } from "@bufbuild/protobuf";
import { field as fieldRulesExt, Ignore } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
// The tokenizer of @streamparser/json (MIT, no dependencies, maintained, millions of downloads a
// week): a byte-level state machine that takes any split of the input (inside a UTF-8 character,
// an escape, a number), decodes strings and numbers exactly as JSON.parse does, and reports each
// token with its UTF-8 byte offset, which is what settledBytes is made of. Only its tokenizer is
// used: the key/container stack is tracked here, over the tokens, against the contract's
// descriptors. (jsonparse, clarinet and stream-json report no per-token byte offsets, and
// stream-json needs Node streams; partial-json re-parses the whole prefix on every piece.)
import { type ParsedTokenInfo, Tokenizer, TokenType } from "@streamparser/json";
import type { Contract, Leaf } from "./contract.js";
import { type ContractViolation, JsonChecker, ViolationSink } from "./json-check.js";
import { parsePayloadPath } from "./payload.js";

export interface IncrementalResult {
  /**
   * Violations found on values completed by the text just pushed (paths as Contract.checkValue
   * renders them, under the given base path, e.g. "choices[0].message.content<json>.priority").
   */
  readonly violations: readonly ContractViolation[];
}

/** Containers nested deeper than this stop incremental checking (failed). */
export const MAX_DEPTH = 64;

const QUOTE = 0x22;
const BACKTICK = 0x60;
const NEWLINE = 0x0a;
/** A surrogate not part of a pair (the `u` flag reads pairs as one code point). */
const LONE_SURROGATE = /\p{Cs}/u;
const SPACE = /\s/;

/** What the next token may be in a container. */
type Expect = "key_or_end" | "key" | "colon" | "value" | "value_or_end" | "comma_or_end";

interface Frame {
  readonly array: boolean;
  /** Object: the message its keys name fields of; undefined when its contents are not checked. */
  readonly message: DescMessage | undefined;
  /** Array: the repeated field its items belong to (of `parent`); undefined when not checked. */
  readonly list: DescField | undefined;
  readonly parent: DescMessage | undefined;
  readonly jsonPath: string;
  readonly rulePath: string;
  readonly rules: boolean;
  expect: Expect;
  /** Object: the last key, and the field it names (undefined: unknown, or not checked). */
  key: string;
  field: DescField | undefined;
  /** Array: the index the next item gets. */
  index: number;
}

/** Thrown from the token callback when the root value ends: the tokenizer must see no more. */
const ROOT_END = new Error("root value ended");
/** The root of a contract without wrapField: the contract message itself, as an object. */
const ROOT_MESSAGE = Symbol("root message");

export class IncrementalPayloadCheck {
  readonly #contract: Contract;
  readonly #base: string;
  readonly #sink: ViolationSink;
  readonly #checker: JsonChecker;
  readonly #tokenizer: StreamTokenizer;
  readonly #stack: Frame[] = [];

  #phase: "prelude" | "body" | "tail" | "stopped" = "prelude";
  /** Prelude: before a fence ("lead"), in its backticks, in its info line, after it ("open"). */
  #prelude: "lead" | "ticks" | "info" | "open" = "lead";
  #fenced = false;
  #ticks = 0;
  /** Tail: whitespace, then (after an opening fence) ``` and whitespace. */
  #tail: "space" | "ticks" | "closed" = "space";

  #pushed = 0;
  #settled = 0;
  /** Set at a violation or at a value left to the final check: settledBytes stays where it is. */
  #frozen = false;
  #failed = false;
  /** A high surrogate that ended a push, waiting for its low half. */
  #pendingHigh = "";
  /** Absolute byte offset of the tokenizer's first byte, and the end of the piece it is reading. */
  #bodyStart = 0;
  #pieceEnd = 0;
  #rootStarted = false;
  #rootEnd = 0;

  /** basePath: the concrete payload path (e.g. "choices[0].message.content<json>"); violations are reported under it. */
  constructor(contract: Contract, basePath: string) {
    this.#contract = contract;
    this.#base = basePath;
    this.#sink = new ViolationSink(contract.maxViolations);
    this.#checker = new JsonChecker(contract.strictness, this.#sink);
    this.#tokenizer = new StreamTokenizer();
    this.#tokenizer.onToken = (token) => this.#onToken(token);
    this.#tokenizer.onError = (error) => {
      if (error !== ROOT_END) this.#fail();
    };
  }

  /**
   * UTF-8 byte length of the text pushed so far up to which everything is settled: structural
   * tokens, complete keys that passed, complete values that passed their checks. Bytes after it
   * belong to a token still being parsed (or a key/value whose check is pending). Never
   * decreases. After a violation, it stops advancing.
   */
  get settledBytes(): number {
    return this.#settled;
  }

  /**
   * Total UTF-8 bytes pushed: the UTF-8 length of all the text pushed, except a high surrogate
   * ending the last push, counted with its low half (a pair is one 4-byte character).
   */
  get pushedBytes(): number {
    return this.#pushed;
  }

  /**
   * True once the text can no longer be a JSON value of the contract (a syntax error, trailing
   * text, the root not an object when the contract is a message without wrapField, nesting
   * deeper than MAX_DEPTH): nothing more is checked, and the final check decides.
   */
  get failed(): boolean {
    return this.#failed;
  }

  /**
   * Takes the next piece of the payload's text (any split: inside a character, a key, an escape, a
   * number); returns the violations on what it completed. Once failed, or once maxViolations are
   * reported, it only counts the bytes.
   */
  push(text: string): IncrementalResult {
    const reported = this.#sink.list.length;
    let piece = this.#pendingHigh + text;
    this.#pendingHigh = "";
    const last = piece.charCodeAt(piece.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) {
      this.#pendingHigh = piece.slice(-1);
      piece = piece.slice(0, -1);
    }
    // Buffer.from, not TextEncoder.encode: ten times faster on short strings (Node's buffer pool).
    const bytes = Buffer.from(piece, "utf8");
    const start = this.#pushed;
    this.#pushed += bytes.length;
    if (this.#phase !== "stopped" && LONE_SURROGATE.test(piece)) {
      // The tokenizer would read it as U+FFFD where JSON.parse keeps it: the values could differ.
      this.#fail();
    }
    if (this.#phase === "prelude") {
      const at = this.#scanPrelude(piece, start);
      if (at !== undefined) {
        this.#phase = "body";
        this.#bodyStart = start + at;
        this.#writeBody(bytes, at, start);
      }
    } else if (this.#phase === "body") this.#writeBody(bytes, 0, start);
    else if (this.#phase === "tail") this.#scanTail(piece);
    return { violations: this.#sink.list.slice(reported) };
  }

  /** Skips whitespace and an opening fence line; returns the byte of `text` the root value starts at, if any. */
  #scanPrelude(text: string, start: number): number | undefined {
    let offset = start;
    for (let i = 0; i < text.length; ) {
      const code = text.codePointAt(i) ?? 0;
      const width = code > 0xffff ? 2 : 1;
      const bytes = codePointBytes(code);
      switch (this.#prelude) {
        case "lead":
        case "open":
          if (this.#prelude === "lead" && code === BACKTICK) {
            this.#prelude = "ticks";
            this.#fenced = true;
            this.#ticks = 1;
          } else if (!SPACE.test(String.fromCodePoint(code))) return offset - start;
          else this.#settle(offset + bytes);
          break;
        case "ticks":
          if (code !== BACKTICK) {
            // "``" is not a fence: the final check reads the text as it is, and it is not JSON.
            this.#fail();
            return undefined;
          }
          if (++this.#ticks === 3) this.#prelude = "info";
          break;
        case "info":
          if (code === NEWLINE) {
            this.#prelude = "open";
            this.#settle(offset + bytes);
          }
          break;
      }
      offset += bytes;
      i += width;
    }
    return undefined;
  }

  /** After the root value: whitespace, and a closing fence when there was an opening one. */
  #scanTail(text: string): void {
    for (const char of text) {
      const code = char.codePointAt(0) ?? 0;
      if (this.#tail === "ticks") {
        if (code !== BACKTICK) {
          this.#fail();
          return;
        }
        if (++this.#ticks === 3) this.#tail = "closed";
      } else if (!SPACE.test(char)) {
        if (this.#tail === "closed" || !this.#fenced || code !== BACKTICK) {
          this.#fail();
          return;
        }
        this.#tail = "ticks";
        this.#ticks = 1;
      }
    }
  }

  /**
   * Writes bytes[from..] to the tokenizer, one piece per double quote: a string token is emitted
   * when its closing quote is read, which is then the last byte written, so its end is known.
   */
  #writeBody(bytes: Buffer, from: number, start: number): void {
    for (let i = from; i < bytes.length && this.#phase === "body"; ) {
      const quote = bytes.indexOf(QUOTE, i);
      const end = quote === -1 ? bytes.length : quote + 1;
      this.#pieceEnd = start + end;
      this.#tokenizer.write(bytes.subarray(i, end));
      i = end;
    }
    if (this.#phase === "tail") this.#scanTail(bytes.subarray(this.#rootEnd - start).toString("utf8"));
  }

  #onToken(token: ParsedTokenInfo): void {
    // The rest of a piece after the checking stopped (a failure, the violation cap).
    if (this.#phase !== "body") return;
    const top = this.#stack[this.#stack.length - 1];
    const end = this.#tokenEnd(token);
    switch (token.token) {
      case TokenType.LEFT_BRACE:
      case TokenType.LEFT_BRACKET:
        if (this.#expectsValue(top)) this.#open(token.token === TokenType.LEFT_BRACKET, top, end);
        else this.#fail();
        break;
      case TokenType.RIGHT_BRACE:
      case TokenType.RIGHT_BRACKET:
        if (top !== undefined && this.#closes(top, token.token === TokenType.RIGHT_BRACKET)) {
          this.#stack.pop();
          this.#settle(end);
          this.#valueDone(end);
        } else this.#fail();
        break;
      case TokenType.COLON:
        if (top?.expect === "colon") {
          top.expect = "value";
          this.#settle(end);
        } else this.#fail();
        break;
      case TokenType.COMMA:
        if (top?.expect === "comma_or_end") {
          top.expect = top.array ? "value" : "key";
          this.#settle(end);
        } else this.#fail();
        break;
      case TokenType.STRING:
        if (top !== undefined && (top.expect === "key" || top.expect === "key_or_end"))
          this.#key(top, token.value as string, end);
        else this.#scalar(token.value, top, end);
        break;
      case TokenType.NUMBER:
      case TokenType.TRUE:
      case TokenType.FALSE:
      case TokenType.NULL:
        this.#scalar(token.value, top, end);
        break;
      default:
        this.#fail();
    }
  }

  /** Whether `]` (array) or `}` may close `frame` now. */
  #closes(frame: Frame, array: boolean): boolean {
    if (frame.array !== array) return false;
    return frame.expect === "comma_or_end" || frame.expect === (array ? "value_or_end" : "key_or_end");
  }

  /** The absolute byte offset just past the token (a string's closing quote ends the piece written). */
  #tokenEnd(token: ParsedTokenInfo): number {
    const start = this.#bodyStart + token.offset;
    switch (token.token) {
      case TokenType.STRING:
        return this.#pieceEnd;
      case TokenType.NUMBER:
        return start + this.#tokenizer.numberText.length;
      case TokenType.TRUE:
      case TokenType.NULL:
        return start + 4;
      case TokenType.FALSE:
        return start + 5;
      default:
        return start + 1;
    }
  }

  #expectsValue(top: Frame | undefined): boolean {
    return top === undefined ? !this.#rootStarted : top.expect === "value" || top.expect === "value_or_end";
  }

  #key(frame: Frame, key: string, end: number): void {
    frame.key = key;
    frame.expect = "colon";
    if (frame.message !== undefined) {
      const before = this.#sink.total;
      frame.field = this.#checker.fieldOf(frame.message, key, joinKey(frame.jsonPath, key));
      if (this.#sink.total !== before) {
        this.#violated();
        return;
      }
    }
    this.#settle(end);
  }

  #scalar(value: unknown, top: Frame | undefined, end: number): void {
    if (!this.#expectsValue(top)) {
      this.#fail();
      return;
    }
    const slot = this.#slot(top);
    if (slot === ROOT_MESSAGE) {
      this.#fail();
      return;
    }
    if (slot !== undefined) {
      const verdict = this.#contract.checkLeaf(value, slot, this.#checker, this.#sink);
      if (verdict === "violated") this.#violated();
      else if (verdict === "unsettled") this.#frozen = true;
    }
    this.#settle(end);
    this.#valueDone(end);
  }

  #open(array: boolean, top: Frame | undefined, end: number): void {
    if (this.#stack.length >= MAX_DEPTH) {
      this.#fail();
      return;
    }
    const slot = this.#slot(top);
    let message: DescMessage | undefined;
    let list: DescField | undefined;
    let jsonPath = "";
    let rulePath = "";
    let rules = false;
    if (slot === ROOT_MESSAGE) {
      if (array) {
        this.#fail();
        return;
      }
      message = this.#contract.spec.message;
      jsonPath = rulePath = this.#base;
      rules = true;
    } else if (slot !== undefined) {
      // The strict JSON walk judges a container by its type alone, so an empty one stands in.
      const before = this.#sink.total;
      const placeholder = array ? [] : {};
      if (slot.index !== undefined && slot.field.fieldKind === "list")
        this.#checker.listItem(placeholder, slot.field, slot.jsonPath);
      else this.#checker.field(placeholder, slot.field, slot.jsonPath);
      if (this.#sink.total !== before) this.#violated();
      else {
        const { field } = slot;
        const item = slot.index !== undefined;
        jsonPath = slot.jsonPath;
        if (array && !item && field.fieldKind === "list") {
          list = field;
          rulePath = slot.rulePath;
          rules = slot.rules;
        } else if (!array) {
          const nested =
            !item && field.fieldKind === "message"
              ? field.message
              : item && field.fieldKind === "list" && field.listKind === "message"
                ? field.message
                : undefined;
          // Maps and the free-form well-known types (Struct, Value, Any) are the final check's.
          if (nested !== undefined && !nested.typeName.startsWith("google.protobuf.")) {
            message = nested;
            rulePath = item ? `${slot.rulePath}[${slot.index}]` : slot.rulePath;
            rules = slot.rules && !ignoredBelow(field, item);
          }
        }
        if (message === undefined && list === undefined) this.#frozen = true;
      }
    }
    this.#rootStarted = true;
    this.#stack.push({
      array,
      message,
      list,
      parent: slot === ROOT_MESSAGE || slot === undefined ? undefined : slot.parent,
      jsonPath,
      rulePath,
      rules,
      expect: array ? "value_or_end" : "key_or_end",
      key: "",
      field: undefined,
      index: 0,
    });
    this.#settle(end);
  }

  /** Where the value starting now belongs: a checked leaf, unchecked (undefined), or the root message. */
  #slot(top: Frame | undefined): Leaf | undefined | typeof ROOT_MESSAGE {
    if (top === undefined) {
      const wrap = this.#contract.wrap;
      if (wrap === undefined) return ROOT_MESSAGE;
      return this.#leaf(this.#contract.spec.message, wrap, undefined, this.#base, this.#base, true);
    }
    if (top.array) {
      const index = top.index++;
      if (top.list === undefined || top.parent === undefined) return undefined;
      return this.#leaf(top.parent, top.list, index, `${top.jsonPath}[${index}]`, top.rulePath, top.rules);
    }
    if (top.message === undefined || top.field === undefined) return undefined;
    return this.#leaf(
      top.message,
      top.field,
      undefined,
      joinKey(top.jsonPath, top.key),
      joinKey(top.rulePath, top.field.name),
      top.rules,
    );
  }

  #leaf(
    parent: DescMessage,
    field: DescField,
    index: number | undefined,
    jsonPath: string,
    rulePath: string,
    rules: boolean,
  ): Leaf {
    return { parent, field, index, jsonPath, rulePath, payloadPath: this.#base, rules };
  }

  #valueDone(end: number): void {
    const top = this.#stack[this.#stack.length - 1];
    this.#rootStarted = true;
    if (top !== undefined) {
      top.expect = "comma_or_end";
      return;
    }
    this.#phase = "tail";
    this.#rootEnd = end;
    throw ROOT_END;
  }

  #settle(end: number): void {
    if (!this.#frozen && end > this.#settled) this.#settled = end;
  }

  #violated(): void {
    this.#frozen = true;
    // Past the cap nothing more would be reported: stop checking (not a failure of the text).
    if (this.#sink.list.length >= this.#sink.max) this.#phase = "stopped";
  }

  #fail(): void {
    this.#failed = true;
    this.#frozen = true;
    this.#phase = "stopped";
  }
}

/** The tokenizer, keeping the text of the last number (its length is the token's length). */
class StreamTokenizer extends Tokenizer {
  numberText = "";

  protected override parseNumber(text: string): number {
    this.numberText = text;
    return Number(text);
  }
}

/** Whether fields nested in a message value of `field` are skipped by protovalidate. */
function ignoredBelow(field: DescField, item: boolean): boolean {
  const rules = getOption(field, fieldRulesExt);
  if (rules.ignore === Ignore.ALWAYS) return true;
  return item && rules.type.case === "repeated" && rules.type.value.items?.ignore === Ignore.ALWAYS;
}

function joinKey(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function codePointBytes(code: number): number {
  return code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
}

/** Whether a contract's payload is JSON text (its payload path ends in <json>): incremental checking applies. */
export function isIncremental(contract: Contract): boolean {
  const parsed = parsePayloadPath(contract.spec.payload ?? "$");
  return parsed.ok && parsed.steps.at(-1)?.kind === "json";
}

/**
 * Whether the string at `target`, a concrete path such as "choices[0].message.content", holds a
 * payload of the contract that is JSON text; if so, the concrete payload path to check it under
 * ("choices[0].message.content<json>"). The payload path's [*] matches any index, [N] only N.
 * `contract` may also be a payload path.
 */
export function payloadTargetOf(contract: Contract | string, target: string): string | undefined {
  const payload = parsePayloadPath(typeof contract === "string" ? contract : (contract.spec.payload ?? "$"));
  const concrete = parsePayloadPath(target);
  if (!payload.ok || !concrete.ok) return undefined;
  const steps = payload.steps;
  if (steps.at(-1)?.kind !== "json" || concrete.steps.length !== steps.length - 1) return undefined;
  let path = "";
  for (let i = 0; i < concrete.steps.length; i++) {
    const want = steps[i];
    const got = concrete.steps[i];
    if (want === undefined || got === undefined) return undefined;
    switch (want.kind) {
      case "key":
        if (got.kind !== "key" || got.name !== want.name) return undefined;
        path = joinKey(path, got.name);
        break;
      case "each":
      case "index":
        if (got.kind !== "index" || (want.kind === "index" && got.index !== want.index)) return undefined;
        path += `[${got.index}]`;
        break;
      case "json":
        if (got.kind !== "json") return undefined;
        path += "<json>";
        break;
    }
  }
  return `${path}<json>`;
}
