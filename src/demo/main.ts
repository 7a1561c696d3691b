// CLI for the demo model server. Prints exactly one JSON line ({"ready":true,...}) on stdout once
// listening, so scripts can start it on port 0 and read the port it got; everything else goes to
// stderr. Exits 0 after a clean close on SIGTERM/SIGINT, 2 on bad flags, 1 if it cannot listen.
import { parseArgs } from "node:util";
import { createDemoModel, type ListeningAddress } from "./server.js";
import { demoOptionsSchema, describeIssues } from "./settings.js";

const USAGE = `usage: node dist/src/demo/main.js [--port 0] [--host 127.0.0.1] [--pool NAME]
  [--version v1] [--variant v1] [--base-latency-ms 0] [--per-kb-ms 0] [--per-token-ms 0]
  [--first-token-ms 0] [--inter-token-ms 0] [--capacity 0] [--batch-penalty 0.5] [--error-rate 0]
  [--seed 1] [--max-body-bytes N] [--eta-jitter-minutes 0]`;

/** Numeric flags and the option each sets; the schema checks ranges, so the CLI only converts. */
const NUMERIC_FLAGS = {
  "base-latency-ms": "baseLatencyMs",
  "per-kb-ms": "perKbMs",
  "per-token-ms": "perTokenMs",
  "first-token-ms": "firstTokenMs",
  "inter-token-ms": "interTokenMs",
  capacity: "capacity",
  "batch-penalty": "batchPenalty",
  "error-rate": "errorRate",
  seed: "seed",
  "max-body-bytes": "maxBodyBytes",
  "eta-jitter-minutes": "etaJitterMinutes",
} as const;

type ParsedCli = { readonly host: string; readonly port: number; readonly options: Record<string, unknown> };

function parseCli(argv: readonly string[]): ParsedCli | string {
  let values: Record<string, string | boolean | undefined>;
  try {
    const numericOptions = Object.fromEntries(
      Object.keys(NUMERIC_FLAGS).map((flag) => [flag, { type: "string" as const }]),
    );
    values = parseArgs({
      args: [...argv],
      strict: true,
      options: {
        port: { type: "string", default: "0" },
        host: { type: "string", default: "127.0.0.1" },
        pool: { type: "string" },
        version: { type: "string" },
        variant: { type: "string" },
        ...numericOptions,
      },
    }).values;
  } catch (error) {
    return (error as Error).message;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return "--port must be an integer from 0 to 65535";
  const options: Record<string, unknown> = {};
  for (const key of ["pool", "version", "variant"] as const) {
    if (typeof values[key] === "string") options[key] = values[key];
  }
  for (const [flag, option] of Object.entries(NUMERIC_FLAGS)) {
    const raw = values[flag];
    if (typeof raw !== "string") continue;
    const number = Number(raw);
    if (raw.trim() === "" || Number.isNaN(number)) return `--${flag} must be a number`;
    options[option] = number;
  }
  return { host: String(values.host), port, options };
}

async function main(): Promise<void> {
  const cli = parseCli(process.argv.slice(2));
  if (typeof cli === "string") {
    process.stderr.write(`${cli}\n${USAGE}\n`);
    process.exit(2);
  }
  const options = demoOptionsSchema.safeParse(cli.options);
  if (!options.success) {
    process.stderr.write(`${describeIssues(options.error)}\n${USAGE}\n`);
    process.exit(2);
  }
  const model = createDemoModel(options.data);
  // Installed before the ready line: a supervisor may signal the instant it reads that line.
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void model.close().then(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  let address: ListeningAddress;
  try {
    address = await model.listen(cli.port, cli.host);
  } catch (error) {
    process.stderr.write(`demo model cannot listen on ${cli.host}:${cli.port}: ${(error as Error).message}\n`);
    process.exit(1);
  }
  if (stopping) return;
  process.stdout.write(`${JSON.stringify({ ready: true, port: address.port, pool: options.data.pool })}\n`);
}

void main();
