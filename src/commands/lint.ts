// `inference-guard lint`: compiles the contracts the way startup does, for editors and CI. Exit
// codes: 0 no problems, 1 contract problems, 2 usage or config errors.
import { parseArgs } from "node:util";
import { prepareGuard } from "../config/prepare.js";
import { compileContracts, formatSourceError } from "../contracts/compile.js";
import { configLine, warningLine } from "./check.js";
import type { CliIo } from "./io.js";

export const LINT_HELP = `Usage:
  inference-guard lint [--config <file>] [--proto <dir>...]

Compiles the contract .proto files as startup does (buf, then every CEL rule and every
message test-compiled) and prints each problem as "file:line: message". With --config, the
config is checked as startup checks it first (every config error, with the errors of the
contracts its routes bind, in one report; warnings too), then the config's contracts.protoPaths
are compiled whole.

Exit status: 0 no problems, 1 contract problems, 2 usage or config error (the config's bound
contracts included).`;

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
  if (values.config !== undefined) {
    // What startup does, in one pass: the config's errors and its bound contracts' errors together.
    const prepared = await prepareGuard(values.config);
    for (const issue of prepared.warnings) io.err(warningLine(values.config, issue));
    if (!prepared.ok) {
      for (const issue of prepared.errors) io.err(configLine(values.config, issue));
      return 2;
    }
    protoPaths = [...prepared.config.contracts.protoPaths, ...protoPaths];
  }
  if (protoPaths.length === 0) protoPaths = ["proto/contracts"];
  // Every contract file, bound or not: a rule error in a message no route binds yet is still an error.
  const compiled = await compileContracts({ protoPaths });
  if (!compiled.ok) {
    for (const error of compiled.errors) io.err(formatSourceError(error));
    return 1;
  }
  io.out(`ok: ${compiled.contracts.messages.size} contract messages in ${compiled.contracts.files.length} files`);
  return 0;
}
