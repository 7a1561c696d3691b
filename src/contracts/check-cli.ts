// `inference-guard check` and `inference-guard lint`: the contract checks for release pipelines.
// A team runs `check` on a candidate model's recorded outputs before rollout; `lint` compiles
// the contracts the way startup does. Exit codes: 0 fine, 1 violations (check) or contract
// errors (lint), 2 usage, config or contract errors (check).
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { loadConfigFile } from "../config/load.js";
import type { GuardConfig } from "../config/schema.js";
import { type CompiledContracts, catalogueOf, compileContracts, formatSourceError } from "./compile.js";
import { crossCheckContracts } from "./config.js";
import { Contract, type ContractSpec } from "./contract.js";
import { STRICT, type Strictness } from "./json-check.js";
import { parsePayloadPath, stringAt } from "./payload.js";

export interface CliIo {
  /** One line of machine-readable output (no trailing newline). */
  readonly out: (line: string) => void;
  /** Human-readable diagnostics (no trailing newline). */
  readonly err: (line: string) => void;
}

export const CHECK_HELP = `Usage:
  inference-guard check --config <file> --contract <route-or-message> <responses.jsonl>
  inference-guard check --proto <dir> [--proto <dir>...] --message <full.name>
                        [--payload <where>] [--wrap-field <field>] <responses.jsonl>

Checks recorded response bodies (one JSON body per line) against an output contract and prints
one JSON line per input line:
  {"line":N,"valid":bool,"model_version":...,"violations":[{"field","rule","message"}]}
Blank lines are skipped. Freshness rules compare against the current time.

Options:
  --config <file>               guard config; the contract of the named route (or message) is used
  --contract <name>             route name, or a contract message bound by some route
  --proto <dir>                 contract .proto directory (repeatable), without a config
  --message <full.name>         contract message, e.g. demo.v1.Sentiment
  --payload <where>             "$" (default), "data[*].embedding", "choices[*].message.content<json>"
  --wrap-field <field>          check each payload as this field of the message
  --model-version-field <path>  body field reported as model_version
  --max-violations <n>          violations listed per line (default 20)
  --allow-unknown-fields, --allow-number-strings, --allow-non-finite-strings,
  --allow-null, --allow-enum-numbers
                                relax one strict JSON check (only with --proto)
  -h, --help                    this text

Exit status: 0 every line valid, 1 some line invalid, 2 usage, config or contract error.`;

export const LINT_HELP = `Usage:
  inference-guard lint [--config <file>] [--proto <dir>...]

Compiles the contract .proto files as startup does (protoc, then every CEL rule and every
message test-compiled) and prints each problem as "file:line: message". With --config, the
config's contracts.protoPaths are used and route bindings are cross-checked too.

Exit status: 0 no problems, 1 problems found, 2 usage or config error.`;

const STRICTNESS_FLAGS = {
  "allow-unknown-fields": "allowUnknownFields",
  "allow-number-strings": "allowNumberStrings",
  "allow-non-finite-strings": "allowNonFiniteStrings",
  "allow-null": "allowNull",
  "allow-enum-numbers": "allowEnumNumbers",
} as const;

type Parsed = ReturnType<typeof parseCheckArgs>;

function parseCheckArgs(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: "string" },
      contract: { type: "string" },
      proto: { type: "string", multiple: true },
      message: { type: "string" },
      payload: { type: "string" },
      "wrap-field": { type: "string" },
      "model-version-field": { type: "string" },
      "max-violations": { type: "string" },
      "allow-unknown-fields": { type: "boolean" },
      "allow-number-strings": { type: "boolean" },
      "allow-non-finite-strings": { type: "boolean" },
      "allow-null": { type: "boolean" },
      "allow-enum-numbers": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}

type Setup = { ok: true; contract: Contract; versionField: string | undefined } | { ok: false; errors: string[] };

export async function runCheck(argv: string[], io: CliIo): Promise<number> {
  let args: Parsed;
  try {
    args = parseCheckArgs(argv);
  } catch (error) {
    io.err(`check: ${(error as Error).message}`);
    io.err(CHECK_HELP);
    return 2;
  }
  const { values, positionals } = args;
  if (values.help === true) {
    io.out(CHECK_HELP);
    return 0;
  }
  const usage = checkUsage(values, positionals);
  if (usage !== undefined) {
    io.err(`check: ${usage}`);
    io.err(CHECK_HELP);
    return 2;
  }
  const maxViolations = values["max-violations"] === undefined ? 20 : Number(values["max-violations"]);
  if (!Number.isInteger(maxViolations) || maxViolations < 1) {
    io.err("check: --max-violations must be a positive integer");
    return 2;
  }
  const setup =
    values.config !== undefined
      ? await fromConfig(values.config, values.contract ?? "", maxViolations)
      : await fromProto(values, maxViolations);
  if (!setup.ok) {
    for (const error of setup.errors) io.err(error);
    return 2;
  }
  const input = positionals[0] ?? "";
  let text: string;
  try {
    text = await readFile(input, "utf8");
  } catch (error) {
    io.err(`check: cannot read ${input}: ${(error as Error).message}`);
    return 2;
  }
  const versionField = values["model-version-field"] ?? setup.versionField;
  let invalid = false;
  text.split("\n").forEach((line, index) => {
    if (line.trim() === "") return;
    const result = setup.contract.checkText(line);
    invalid ||= !result.valid;
    io.out(
      JSON.stringify({
        line: index + 1,
        valid: result.valid,
        model_version: versionField === undefined ? null : (stringAt(result.body, versionField) ?? null),
        violations: result.violations,
      }),
    );
  });
  return invalid ? 1 : 0;
}

function checkUsage(values: Parsed["values"], positionals: string[]): string | undefined {
  if (positionals.length !== 1) return "expected exactly one <responses.jsonl> file";
  if (values.config !== undefined) {
    if (values.contract === undefined) return "--config needs --contract <route-or-message>";
    if (
      values.proto !== undefined ||
      values.message !== undefined ||
      values.payload !== undefined ||
      values["wrap-field"] !== undefined
    ) {
      return "--config takes the contract binding from the config: drop --proto/--message/--payload/--wrap-field";
    }
    if (Object.keys(STRICTNESS_FLAGS).some((flag) => values[flag as keyof typeof STRICTNESS_FLAGS] === true)) {
      return "--allow-* flags only apply with --proto (the config sets strictness per route)";
    }
    return undefined;
  }
  if (values.proto === undefined || values.message === undefined)
    return "give either --config and --contract, or --proto and --message";
  if (values.contract !== undefined) return "--contract needs --config";
  if (values.payload !== undefined) {
    const parsed = parsePayloadPath(values.payload);
    if (!parsed.ok) return parsed.error;
  }
  return undefined;
}

async function fromConfig(file: string, name: string, maxViolations: number): Promise<Setup> {
  const loaded = await loadConfigFile(file);
  if (!loaded.ok)
    return {
      ok: false,
      errors: loaded.errors.map((issue) => `${file}: ${issue.path === "" ? "" : `${issue.path}: `}${issue.message}`),
    };
  const config = loaded.config;
  const compiled = await compileContracts(config.contracts);
  if (!compiled.ok) return { ok: false, errors: compiled.errors.map(formatSourceError) };
  const issues = crossCheckContracts(config, catalogueOf(compiled.contracts));
  if (issues.length > 0)
    return { ok: false, errors: issues.map((issue) => `${file}: ${issue.path}: ${issue.message}`) };
  const route =
    config.routes.find((candidate) => candidate.name === name && candidate.contract !== undefined) ??
    config.routes.find((candidate) => candidate.contract?.message === name);
  const binding = route?.contract;
  if (binding === undefined)
    return {
      ok: false,
      errors: [`${file}: no route named "${name}" with a contract, and no route binds a contract message "${name}"`],
    };
  const message = compiled.contracts.messages.get(binding.message);
  if (message === undefined) return { ok: false, errors: [`${file}: unknown contract message "${binding.message}"`] };
  return {
    ok: true,
    contract: contractFor(compiled.contracts, {
      message,
      payload: binding.payload,
      ...(binding.wrapField === undefined ? {} : { wrapField: binding.wrapField }),
      strictness: binding,
      maxViolations,
      maxPayloads: config.contracts.maxPayloads,
    }),
    versionField: binding.modelVersionField,
  };
}

async function fromProto(values: Parsed["values"], maxViolations: number): Promise<Setup> {
  const compiled = await compileContracts({ protoPaths: values.proto ?? [] });
  if (!compiled.ok) return { ok: false, errors: compiled.errors.map(formatSourceError) };
  const name = values.message ?? "";
  const message = compiled.contracts.messages.get(name);
  if (message === undefined) {
    const known = [...compiled.contracts.messages.keys()].sort().join(", ");
    return { ok: false, errors: [`check: unknown message "${name}" (known: ${known === "" ? "none" : known})`] };
  }
  const wrapField = values["wrap-field"];
  if (
    wrapField !== undefined &&
    !message.fields.some((field) => field.name === wrapField || field.jsonName === wrapField)
  ) {
    return { ok: false, errors: [`check: ${name} has no field "${wrapField}"`] };
  }
  const strictness: { -readonly [K in keyof Strictness]: boolean } = { ...STRICT };
  for (const [flag, key] of Object.entries(STRICTNESS_FLAGS)) {
    if (values[flag as keyof typeof STRICTNESS_FLAGS] === true) strictness[key] = true;
  }
  return {
    ok: true,
    contract: contractFor(compiled.contracts, {
      message,
      payload: values.payload ?? "$",
      ...(wrapField === undefined ? {} : { wrapField }),
      strictness,
      maxViolations,
    }),
    versionField: undefined,
  };
}

function contractFor(compiled: CompiledContracts, spec: ContractSpec): Contract {
  return new Contract(spec, compiled.validator, compiled.registry);
}

function parseLintArgs(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      config: { type: "string" },
      proto: { type: "string", multiple: true },
      help: { type: "boolean", short: "h" },
    },
  });
}

export async function runLint(argv: string[], io: CliIo): Promise<number> {
  let values: ReturnType<typeof parseLintArgs>["values"];
  try {
    ({ values } = parseLintArgs(argv));
  } catch (error) {
    io.err(`lint: ${(error as Error).message}`);
    io.err(LINT_HELP);
    return 2;
  }
  if (values.help === true) {
    io.out(LINT_HELP);
    return 0;
  }
  let protoPaths = values.proto ?? [];
  let protoc: string | undefined;
  let config: GuardConfig | undefined;
  if (values.config !== undefined) {
    const loaded = await loadConfigFile(values.config);
    for (const issue of loaded.warnings) io.err(`${values.config}: warning: ${issue.path}: ${issue.message}`);
    if (!loaded.ok) {
      for (const issue of loaded.errors)
        io.err(`${values.config}: ${issue.path === "" ? "" : `${issue.path}: `}${issue.message}`);
      return 2;
    }
    config = loaded.config;
    protoPaths = [...config.contracts.protoPaths, ...protoPaths];
    protoc = config.contracts.protoc;
  }
  if (protoPaths.length === 0) protoPaths = ["proto/contracts"];
  const compiled = await compileContracts(protoc === undefined ? { protoPaths } : { protoPaths, protoc });
  if (!compiled.ok) {
    for (const error of compiled.errors) io.err(formatSourceError(error));
    return 1;
  }
  if (config !== undefined && values.config !== undefined) {
    const issues = crossCheckContracts(config, catalogueOf(compiled.contracts));
    for (const issue of issues) io.err(`${values.config}: ${issue.path}: ${issue.message}`);
    if (issues.length > 0) return 1;
  }
  io.out(`ok: ${compiled.contracts.messages.size} contract messages in ${compiled.contracts.files.length} files`);
  return 0;
}
