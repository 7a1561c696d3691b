// `inference-guard lint`: compiles the contracts the way startup does, for editors and CI. Exit
// codes: 0 no problems, 1 contract problems, 2 usage or config errors.
import { parseArgs } from "node:util";
import { loadConfigFile } from "../config/load.js";
import type { GuardConfig } from "../config/schema.js";
import { catalogueOf, compileContracts, formatSourceError } from "../contracts/compile.js";
import { crossCheckContracts } from "../contracts/config.js";
import type { CliIo } from "./check.js";

export const LINT_HELP = `Usage:
  inference-guard lint [--config <file>] [--proto <dir>...]

Compiles the contract .proto files as startup does (protoc, then every CEL rule and every
message test-compiled) and prints each problem as "file:line: message". With --config, the
config's contracts.protoPaths are used and route bindings are cross-checked too.

Exit status: 0 no problems, 1 problems found, 2 usage or config error.`;

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
