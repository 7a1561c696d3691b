// inference-guard command line. Exit codes: 0 success, 1 runtime failure (or, for check, more
// violated or unverifiable lines than tolerated), 2 usage or configuration error.
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runCheck } from "./commands/check.js";
import { runLint } from "./commands/lint.js";
import { prepareGuard } from "./config/prepare.js";
import { ComponentLogs, createLogger } from "./log.js";
import { startGuard } from "./server/serve.js";
import { VERSION } from "./version.js";

export const DEFAULT_CONFIG_PATH = fileURLToPath(new URL("../../config/default.yaml", import.meta.url));

const USAGE = `inference-guard ${VERSION}: Envoy ext_proc sidecar for AI inference traffic

Usage: inference-guard <command> [options]

Commands:
  serve     run the ext_proc server and the admin endpoint
  check     validate recorded model responses (JSON lines) against an output contract
  lint      compile output contracts and report rule errors with file:line
  version   print the version

Run "inference-guard <command> --help" for a command's options.
Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
`;

const SERVE_USAGE = `Usage: inference-guard serve [--config guard.yaml]

Options:
  --config <file>   YAML configuration (default: the embedded ${DEFAULT_CONFIG_PATH})
  --help            show this help

Reload: SIGHUP or a change of the config file re-reads it; a bad file is rejected with its errors
(logged, counted in guard_config_reloads_total{result="failure"}) and the running config stays.
Signals: SIGTERM/SIGINT drain and exit 0: readiness false at once, new streams still served for
drain.graceMs (load balancers and Envoy's health checks take the guard out meanwhile), then refused;
open streams are cut drain.timeoutMs after the signal. A second SIGTERM/SIGINT ends the grace.
Exit codes: 0 drained, 1 runtime failure, 2 invalid configuration (every problem printed with its path).
`;

interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

const stdio: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

async function serve(argv: string[], io: Io): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: "string" }, help: { type: "boolean" } },
    strict: true,
  });
  if (values.help === true) {
    io.out(SERVE_USAGE);
    return 0;
  }
  const file = values.config ?? DEFAULT_CONFIG_PATH;
  const prepared = await prepareGuard(file);
  if (!prepared.ok) {
    io.err(`inference-guard: invalid configuration ${file}\n`);
    for (const issue of prepared.errors) io.err(`  ${issue.path === "" ? "" : `${issue.path}: `}${issue.message}\n`);
    for (const issue of prepared.warnings)
      io.err(`  warning: ${issue.path === "" ? "" : `${issue.path}: `}${issue.message}\n`);
    return 2;
  }
  const logs = new ComponentLogs(createLogger(prepared.config.log.level), prepared.config.log);
  const log = logs.root;
  for (const warning of prepared.warnings) log.warn({ path: warning.path }, warning.message);
  const guard = await startGuard(prepared, logs, values.config === undefined ? {} : { configFile: file, watch: true });
  process.on("SIGHUP", () => void guard.reload());
  return new Promise<number>((resolve) => {
    // Every signal, not only the first: a second one ends the grace (guard.drain), and without a
    // listener Node would die of it with the open streams cut.
    const stop = (signal: NodeJS.Signals): void => {
      log.info({ signal }, "stopping");
      guard.drain().then(
        () => resolve(0),
        (error: unknown) => {
          log.error({ err: error }, "drain failed");
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
}

/** check and lint write whole lines. */
function lineIo(io: Io): { out: (line: string) => void; err: (line: string) => void } {
  return { out: (line) => io.out(`${line}\n`), err: (line) => io.err(`${line}\n`) };
}

export async function main(argv: string[], io: Io = stdio): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "serve":
        return await serve(rest, io);
      case "check":
        return await runCheck(rest, lineIo(io));
      case "lint":
        return await runLint(rest, lineIo(io));
      case "version":
      case "--version":
        io.out(`${VERSION}\n`);
        return 0;
      case undefined:
      case "help":
      case "--help":
      case "-h":
        io.out(USAGE);
        return command === undefined ? 2 : 0;
      default:
        io.err(`inference-guard: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (error) {
    // parseArgs reports unknown or malformed options by throwing; they are usage errors.
    if (error instanceof TypeError && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS")) {
      io.err(`inference-guard ${command ?? ""}: ${error.message}\n`);
      return 2;
    }
    io.err(`inference-guard: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}
