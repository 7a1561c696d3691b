// `inference-guard check`: the contract check for release pipelines. A team runs it on a candidate
// model's recorded outputs before rollout. Exit codes: 0 within tolerance, 1 a tolerance
// exceeded, 2 usage, config, contract or input errors.
import { type FileHandle, open } from "node:fs/promises";
import { parseArgs } from "node:util";
import { prepareGuard } from "../config/prepare.js";
import type { ConfigIssue } from "../config-kit/issues.js";
import { type CompiledContracts, compileContracts, formatSourceError } from "../contracts/compile.js";
import { Contract, type ContractSpec } from "../contracts/contract.js";
import { type ContractViolation, STRICT, type Strictness } from "../contracts/json-check.js";
import { parsePayloadPath, stringAt } from "../contracts/payload.js";
import { type DriftConfig, driftSchema, type RouteDriftConfig } from "../pipeline/drift/config.js";
import { thresholdsOf } from "../pipeline/drift/monitor.js";
import { type DriftCheckSettings, runDriftCheck } from "./check-drift.js";
import {
  type CheckSummary,
  checkTally,
  formatSummary,
  type Tolerances,
  type Verdict,
  verdictOf,
} from "./check-summary.js";
import type { CliIo } from "./io.js";

export const CHECK_HELP = `Usage:
  inference-guard check --config <file> --contract <route-or-message> <responses.jsonl>
  inference-guard check --proto <dir> [--proto <dir>...] --message <full.name>
                        [--payload <where>] [--wrap-field <field>] <responses.jsonl>

Checks recorded response bodies (one JSON body per line, read as a stream) against an output
contract. Each non-blank line gets a verdict: passed; violated (a payload broke the contract);
unverifiable (the line is not JSON, or the payload path finds no payload). Blank lines are
skipped. Freshness rules compare against the current time.

Output (--format text, the default): one JSON line per non-blank input line on stdout,
  {"line":N,"valid":bool,"verdict":"passed|violated|unverifiable","model_version":...,
   "violations":[{"field","rule","message"}]}
then a summary on stderr: lines read, passed, violated (by rule and by field), unverifiable
(by reason), blank, and whether the tolerances held.
Output (--format json): one JSON document on stdout, written as the lines are checked:
  {"results":[<the per-line objects above>],"summary":{"lines_read","blank","checked",
   "passed","violated","unverifiable","violation_ratio","unverifiable_ratio",
   "max_violation_ratio","max_unverifiable_ratio","violated_by_rule","violated_by_field",
   "unverifiable_by_reason","ok"}}

Options:
  --config <file>               guard config; the contract of the named route (or message) is used
  --contract <name>             route name, or a contract message bound by some route
  --proto <dir>                 contract .proto directory (repeatable), without a config
  --message <full.name>         contract message, e.g. demo.v1.Sentiment
  --payload <where>             "$" (default), "data[*].embedding", "choices[*].message.content<json>"
  --wrap-field <field>          check each payload as this field of the message
  --model-version-field <path>  body field reported as model_version
  --max-violations <n>          violations listed per line (default 20)
  --max-violation-ratio <r>     tolerated violated ÷ checked (passed + violated), 0 to 1 (default 0)
  --max-unverifiable-ratio <r>  tolerated unverifiable ÷ non-blank lines, 0 to 1 (default 0)
  --format text|json            output layout (default text); --json is --format json
  --baseline <v1.jsonl>         drift instead of the contract check: profile both recordings through
                                the contract's fields and score <responses.jsonl> against this one
                                as the running guard scores a model version (docs/drift.md); exit 0
                                stable, 1 drifting, 2 too few payloads to judge
  --min-samples <n>             payloads each side needs before a drift verdict (default: the
                                config's drift.minSamples, 200)
  --allow-unknown-fields, --allow-number-strings, --allow-non-finite-strings,
  --allow-null, --allow-enum-numbers
                                relax one strict JSON check (only with --proto)
  -h, --help                    this text

Exit status: 0 both ratios within their tolerance (with the defaults: every line passed),
1 a ratio above its tolerance, 2 usage, config, contract or input error (stdout is then
incomplete; the reason is on stderr).`;

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
      "max-violation-ratio": { type: "string" },
      "max-unverifiable-ratio": { type: "string" },
      format: { type: "string" },
      json: { type: "boolean" },
      baseline: { type: "string" },
      "min-samples": { type: "string" },
      "allow-unknown-fields": { type: "boolean" },
      "allow-number-strings": { type: "boolean" },
      "allow-non-finite-strings": { type: "boolean" },
      "allow-null": { type: "boolean" },
      "allow-enum-numbers": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}

type Setup =
  | { ok: true; contract: Contract; versionField: string | undefined; drift: DriftCheckSettings }
  | { ok: false; errors: string[] };

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
  const options = runOptions(values);
  if (typeof options === "string") {
    io.err(`check: ${options}`);
    return 2;
  }
  const setup =
    values.config !== undefined
      ? await fromConfig(values.config, values.contract ?? "", options.maxViolations, io)
      : await fromProto(values, options.maxViolations);
  if (!setup.ok) {
    for (const error of setup.errors) io.err(error);
    return 2;
  }
  const input = positionals[0] ?? "";
  if (values.baseline !== undefined) {
    const minSamples = values["min-samples"] === undefined ? setup.drift.minSamples : Number(values["min-samples"]);
    if (!Number.isInteger(minSamples) || minSamples < 1) {
      io.err("check: --min-samples must be a positive integer");
      return 2;
    }
    return runDriftCheck(
      setup.contract,
      { ...setup.drift, minSamples },
      { baseline: values.baseline, candidate: input },
      options.format,
      io,
    );
  }
  const versionField = values["model-version-field"] ?? setup.versionField;
  let handle: FileHandle;
  try {
    handle = await open(input);
    if ((await handle.stat()).isDirectory()) {
      await handle.close();
      throw new Error("is a directory");
    }
  } catch (error) {
    io.err(`check: cannot read ${input}: ${(error as Error).message}`);
    return 2;
  }
  const tally = checkTally(options.tolerances);
  const report = options.format === "json" ? jsonReport(io) : textReport(io);
  try {
    let lineNumber = 0;
    // One line at a time: the recording is never held whole, only the tally's counters are kept.
    for await (const line of handle.readLines()) {
      lineNumber++;
      if (line.trim() === "") {
        tally.blank();
        continue;
      }
      const result = setup.contract.checkText(line);
      const verdict = verdictOf(result);
      tally.add(result, verdict);
      report.line({
        line: lineNumber,
        valid: result.valid,
        verdict: verdict.verdict,
        model_version: versionField === undefined ? null : (stringAt(result.body, versionField) ?? null),
        violations: result.violations,
      });
    }
  } catch (error) {
    io.err(`check: reading ${input} failed: ${(error as Error).message}`);
    return 2;
  } finally {
    await handle.close();
  }
  const summary = tally.summary();
  report.end(summary);
  return summary.ok ? 0 : 1;
}

interface RunOptions {
  readonly maxViolations: number;
  readonly tolerances: Tolerances;
  readonly format: "text" | "json";
}

/** The options that shape the run (not the contract), or what is wrong with them. */
function runOptions(values: Parsed["values"]): RunOptions | string {
  const maxViolations = values["max-violations"] === undefined ? 20 : Number(values["max-violations"]);
  if (!Number.isInteger(maxViolations) || maxViolations < 1) return "--max-violations must be a positive integer";
  const maxViolationRatio = ratioOption("max-violation-ratio", values["max-violation-ratio"]);
  if (typeof maxViolationRatio === "string") return maxViolationRatio;
  const maxUnverifiableRatio = ratioOption("max-unverifiable-ratio", values["max-unverifiable-ratio"]);
  if (typeof maxUnverifiableRatio === "string") return maxUnverifiableRatio;
  const format = values.format ?? (values.json === true ? "json" : "text");
  if (format !== "text" && format !== "json") return `--format must be text or json, not "${format}"`;
  if (values.json === true && format !== "json") return "--json contradicts --format text";
  return { maxViolations, tolerances: { maxViolationRatio, maxUnverifiableRatio }, format };
}

function ratioOption(flag: string, text: string | undefined): number | string {
  if (text === undefined) return 0;
  // Number("") is 0 and Number("0x1") is 1: only a decimal (exponent allowed) is taken as a ratio.
  const ratio = /^(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text) ? Number(text) : Number.NaN;
  if (!(ratio >= 0 && ratio <= 1)) return `--${flag} must be a number from 0 to 1 (a share of lines), not "${text}"`;
  return ratio;
}

interface LineResult {
  readonly line: number;
  readonly valid: boolean;
  readonly verdict: Verdict;
  readonly model_version: string | null;
  readonly violations: readonly ContractViolation[];
}

interface Report {
  line(result: LineResult): void;
  end(summary: CheckSummary): void;
}

/** JSON lines on stdout (jq-friendly, as before the summary existed), the summary for people on stderr. */
function textReport(io: CliIo): Report {
  return {
    line: (result) => io.out(JSON.stringify(result)),
    end: (summary) => {
      for (const line of formatSummary(summary)) io.err(line);
    },
  };
}

/**
 * One JSON document, written as it goes so a long recording is not buffered: its opening, one
 * result per line (a comma before all but the first), then the summary and the closing brace.
 */
function jsonReport(io: CliIo): Report {
  let first = true;
  io.out('{"results":[');
  return {
    line: (result) => {
      io.out(`${first ? "" : ","}${JSON.stringify(result)}`);
      first = false;
    },
    end: (summary) => io.out(`],"summary":${JSON.stringify(summary)}}`),
  };
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

/** A config problem as the command prints it: contract source errors already name their file:line. */
export function configLine(file: string, issue: ConfigIssue): string {
  return issue.path === "" ? issue.message : `${file}: ${issue.path}: ${issue.message}`;
}

export function warningLine(file: string, issue: ConfigIssue): string {
  return `${file}: warning: ${issue.path}: ${issue.message}`;
}

async function fromConfig(file: string, name: string, maxViolations: number, io: CliIo): Promise<Setup> {
  // What startup does: the config, its contracts compiled and its bindings cross-checked, in one pass.
  const prepared = await prepareGuard(file);
  for (const issue of prepared.warnings) io.err(warningLine(file, issue));
  if (!prepared.ok) return { ok: false, errors: prepared.errors.map((issue) => configLine(file, issue)) };
  const { config, contracts } = prepared;
  const route =
    config.routes.find((candidate) => candidate.name === name && candidate.contract !== undefined) ??
    config.routes.find((candidate) => candidate.contract?.message === name);
  const binding = route?.contract;
  // The cross-check has already proved every bound message exists in the compiled contracts.
  const message = binding === undefined ? undefined : contracts?.messages.get(binding.message);
  if (binding === undefined || contracts === undefined || message === undefined)
    return {
      ok: false,
      errors: [`${file}: no route named "${name}" with a contract, and no route binds a contract message "${name}"`],
    };
  return {
    ok: true,
    contract: contractFor(contracts, {
      message,
      payload: binding.payload,
      ...(binding.wrapField === undefined ? {} : { wrapField: binding.wrapField }),
      strictness: binding,
      maxViolations,
      maxPayloads: config.contracts.maxPayloads,
    }),
    versionField: binding.modelVersionField,
    drift: driftSettings(config.drift, route?.drift),
  };
}

/** The drift monitor's settings for one route: the section's, with the route's own thresholds. */
function driftSettings(section: DriftConfig, route: RouteDriftConfig | undefined): DriftCheckSettings {
  return {
    minSamples: section.minSamples,
    thresholds: route === undefined ? section.thresholds : thresholdsOf(section, route),
    profile: { relativeAccuracy: section.relativeAccuracy, maxCategories: section.maxCategories },
    maxFields: section.maxFields,
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
    drift: driftSettings(driftSchema.parse({}), undefined),
  };
}

function contractFor(compiled: CompiledContracts, spec: ContractSpec): Contract {
  return new Contract(spec, compiled.validator, compiled.registry);
}
