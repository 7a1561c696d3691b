// Compiles contract .proto files from source at startup: protoc (Debian protobuf-compiler) parses
// them against a descriptor set made from the descriptors the registry packages embed
// (buf/validate/validate.proto from @bufbuild/protovalidate, the well-known types from
// @bufbuild/protobuf), so no validate.proto source and no network are needed. Then every
// message is test-compiled: all CEL expressions are parsed, and protovalidate plans and
// evaluates each message once on a synthetic, fully populated instance, so a bad rule stops
// startup instead of failing the first request. See docs/contracts.md for why protoc.
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { parse as parseCel } from "@bufbuild/cel";
import {
  create,
  createFileRegistry,
  type DescField,
  type DescFile,
  type DescMessage,
  type FileRegistry,
  fromBinary,
  fromJson,
  getOption,
  type JsonValue,
  type Message,
  ScalarType,
  toBinary,
} from "@bufbuild/protobuf";
import {
  type FileDescriptorSet,
  FileDescriptorSetSchema,
  file_google_protobuf_any,
  file_google_protobuf_descriptor,
  file_google_protobuf_duration,
  file_google_protobuf_empty,
  file_google_protobuf_field_mask,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
} from "@bufbuild/protobuf/wkt";
import { createValidator, type Validator } from "@bufbuild/protovalidate";
import {
  type FieldRules,
  field as fieldRulesExt,
  file_buf_validate_validate,
  message as messageRulesExt,
  type Rule,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

export interface ContractSourceError {
  /** Path of the .proto file as the user knows it (protoPaths entry joined with the file name). */
  readonly file: string;
  /** 1-based; absent when the problem is not tied to a line (file not found, protoc missing). */
  readonly line?: number;
  readonly message: string;
}

export function formatSourceError(error: ContractSourceError): string {
  return error.line === undefined ? `${error.file}: ${error.message}` : `${error.file}:${error.line}: ${error.message}`;
}

export interface CompiledContracts {
  readonly registry: FileRegistry;
  readonly validator: Validator;
  /** Contract messages by full name (messages of the user's files, not of their imports). */
  readonly messages: ReadonlyMap<string, DescMessage>;
  /** The .proto files compiled, as paths under protoPaths. */
  readonly files: readonly string[];
}

export type CompileResult =
  | { readonly ok: true; readonly contracts: CompiledContracts }
  | { readonly ok: false; readonly errors: readonly ContractSourceError[] };

export interface CompileOptions {
  readonly protoPaths: readonly string[];
  readonly protoc?: string;
}

/** The only imports contracts get without a source file; their descriptors ship in npm packages. */
const EMBEDDED_FILES: readonly DescFile[] = [
  file_google_protobuf_descriptor,
  file_google_protobuf_duration,
  file_google_protobuf_timestamp,
  file_google_protobuf_field_mask,
  file_google_protobuf_any,
  file_google_protobuf_empty,
  file_google_protobuf_struct,
  file_google_protobuf_wrappers,
  file_buf_validate_validate,
];

/** Same extension number for buf.validate.field / .message options. */
const VALIDATE_OPTION = 1159;
const FIELD_OPTIONS = 8;
const MESSAGE_OPTIONS = 7;
/** Field numbers of `cel` in buf.validate.MessageRules and FieldRules. */
const MESSAGE_RULES_CEL = 3;
const FIELD_RULES_CEL = 23;

async function findProtoFiles(root: string): Promise<{ files: string[]; error?: string }> {
  const info = await stat(root).catch(() => undefined);
  // A missing directory means "no contracts here": an empty config must start.
  if (info === undefined) return { files: [] };
  if (!info.isDirectory()) return { files: [], error: "not a directory" };
  try {
    const entries = await readdir(root, { recursive: true, withFileTypes: true });
    const files = entries
      .filter((entry) => entry.isFile() && entry.name.endsWith(".proto"))
      .map((entry) => relative(root, join(entry.parentPath, entry.name)))
      .sort();
    return { files };
  } catch (error) {
    return { files: [], error: (error as Error).message };
  }
}

function runProtoc(protoc: string, args: string[]): Promise<{ code: number | "missing"; stderr: string }> {
  return new Promise((resolve) => {
    execFile(protoc, args, { maxBuffer: 4 * 1024 * 1024 }, (error, _stdout, stderr) => {
      if (error === null) return resolve({ code: 0, stderr });
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return resolve({ code: "missing", stderr: "" });
      resolve({ code: typeof error.code === "number" ? error.code : 1, stderr });
    });
  });
}

const PROTOC_LINE = /^(.+?):(\d+):(\d+): (.*)$/;
const PROTOC_FILE = /^(.+?\.proto): (.*)$/;

function parseProtocErrors(stderr: string, resolveFile: (name: string) => string): ContractSourceError[] {
  const errors: ContractSourceError[] = [];
  for (const line of stderr.split("\n")) {
    if (line.trim() === "") continue;
    const withLine = PROTOC_LINE.exec(line);
    if (withLine !== null) {
      errors.push({ file: resolveFile(withLine[1] ?? ""), line: Number(withLine[2]), message: withLine[4] ?? "" });
      continue;
    }
    const withFile = PROTOC_FILE.exec(line);
    if (withFile !== null) errors.push({ file: resolveFile(withFile[1] ?? ""), message: withFile[2] ?? "" });
    else errors.push({ file: "protoc", message: line });
  }
  return errors;
}

export async function compileContracts(options: CompileOptions): Promise<CompileResult> {
  const errors: ContractSourceError[] = [];
  const sources: { root: string; name: string }[] = [];
  for (const root of options.protoPaths) {
    const found = await findProtoFiles(root);
    if (found.error !== undefined) errors.push({ file: root, message: found.error });
    for (const name of found.files) sources.push({ root, name });
  }
  if (errors.length > 0) return { ok: false, errors };
  const userPath = (name: string): string => {
    const source = sources.find((candidate) => candidate.name === name);
    return source === undefined ? name : join(source.root, name);
  };

  let set: FileDescriptorSet;
  if (sources.length === 0) {
    set = create(FileDescriptorSetSchema, { file: EMBEDDED_FILES.map((file) => file.proto) });
  } else {
    const work = await mkdtemp(join(tmpdir(), "guard-contracts-"));
    try {
      const depsFile = join(work, "deps.pb");
      const outFile = join(work, "out.pb");
      await writeFile(
        depsFile,
        toBinary(
          FileDescriptorSetSchema,
          create(FileDescriptorSetSchema, { file: EMBEDDED_FILES.map((file) => file.proto) }),
        ),
      );
      const protoc = options.protoc ?? "protoc";
      const args = [
        `--descriptor_set_in=${depsFile}`,
        ...options.protoPaths.map((root) => `--proto_path=${root}`),
        "--include_imports",
        "--include_source_info",
        `--descriptor_set_out=${outFile}`,
        ...[...new Set(sources.map((source) => source.name))],
      ];
      const result = await runProtoc(protoc, args);
      if (result.code === "missing") {
        return {
          ok: false,
          errors: [{ file: protoc, message: "protoc not found: install protobuf-compiler or set contracts.protoc" }],
        };
      }
      if (result.code !== 0) {
        const parsed = parseProtocErrors(result.stderr, userPath);
        return {
          ok: false,
          errors: parsed.length > 0 ? parsed : [{ file: "protoc", message: `exited with ${result.code}` }],
        };
      }
      set = fromBinary(FileDescriptorSetSchema, await readFile(outFile));
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  let registry: FileRegistry;
  try {
    registry = createFileRegistry(set);
  } catch (error) {
    return { ok: false, errors: [{ file: "protoc", message: `descriptor set rejected: ${(error as Error).message}` }] };
  }
  const validator = createValidator({ registry });
  const userFiles = new Set(sources.map((source) => source.name));
  const messages = new Map<string, { message: DescMessage; locate: Locator }>();
  for (const file of registry.files) {
    if (!userFiles.has(file.proto.name)) continue;
    const locate = locator(file, userPath(file.proto.name));
    for (const message of allMessages(file.messages)) messages.set(message.typeName, { message, locate });
  }
  // Syntax first: every bad expression is listed, and the probes would only repeat them.
  for (const { message, locate } of messages.values()) errors.push(...celSyntaxErrors(message, locate));
  if (errors.length > 0) return { ok: false, errors };
  const probes: ProbeError[] = [];
  for (const { message, locate } of messages.values()) {
    const probe = probeError(message, validator, registry, locate);
    if (probe !== undefined) probes.push(probe);
  }
  errors.push(...dedupeProbeErrors(probes));
  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    contracts: {
      registry,
      validator,
      messages: new Map([...messages].map(([name, entry]) => [name, entry.message])),
      files: sources.map((source) => join(source.root, source.name)),
    },
  };
}

function allMessages(messages: readonly DescMessage[]): DescMessage[] {
  return messages.flatMap((message) => [message, ...allMessages(message.nestedMessages)]);
}

interface Locator {
  message(message: DescMessage, celIndex?: number): ContractSourceError;
  field(field: DescField, celIndex?: number): ContractSourceError;
}

/** Maps descriptors to source lines through the SourceCodeInfo protoc recorded. */
function locator(file: DescFile, path: string): Locator {
  const locations = (file.proto.sourceCodeInfo?.location ?? []).map((location) => ({
    path: `${location.path.join(",")},`,
    line: (location.span[0] ?? 0) + 1,
  }));
  const messagePath = (message: DescMessage): number[] =>
    message.parent === undefined
      ? [4, file.proto.messageType.indexOf(message.proto)]
      : [...messagePath(message.parent), 3, message.parent.proto.nestedType.indexOf(message.proto)];
  // The most specific recorded location wins: the CEL rule itself, then the option, then the element.
  const at = (...prefixes: number[][]): ContractSourceError => {
    for (const prefix of prefixes) {
      const key = `${prefix.join(",")},`;
      let line: number | undefined;
      for (const location of locations) {
        if (location.path.startsWith(key) && (line === undefined || location.line < line)) line = location.line;
      }
      if (line !== undefined) return { file: path, line, message: "" };
    }
    return { file: path, message: "" };
  };
  const cel = (options: number[], celField: number, celIndex: number | undefined): number[][] =>
    celIndex === undefined ? [options] : [[...options, VALIDATE_OPTION, celField, celIndex], options];
  return {
    message: (message, celIndex) => {
      const base = messagePath(message);
      return at(...cel([...base, MESSAGE_OPTIONS], MESSAGE_RULES_CEL, celIndex), base);
    },
    field: (field, celIndex) => {
      const base = [...messagePath(field.parent), 2, field.parent.proto.field.indexOf(field.proto)];
      return at(...cel([...base, FIELD_OPTIONS], FIELD_RULES_CEL, celIndex), base);
    },
  };
}

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

function celSyntaxErrors(message: DescMessage, locate: Locator): ContractSourceError[] {
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

interface ProbeError {
  readonly text: string;
  readonly error: ContractSourceError;
  /** The error was tied to a rule or field of this message (not of a message it contains). */
  readonly own: boolean;
}

function probeError(
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
function dedupeProbeErrors(probes: readonly ProbeError[]): ContractSourceError[] {
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

/** A JSON instance with every field set (lists and maps with one entry), so every rule runs. */
function probeJson(message: DescMessage, depth: number): JsonValue {
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

/** The view of compiled contracts that crossCheckContracts (config.ts) needs. */
export function catalogueOf(contracts: CompiledContracts): {
  fieldsOf(message: string): readonly string[] | undefined;
} {
  return {
    fieldsOf: (message) =>
      contracts.messages
        .get(message)
        ?.fields.flatMap((field) => (field.jsonName === field.name ? [field.name] : [field.name, field.jsonName])),
  };
}
