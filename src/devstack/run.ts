// `make run`: the demo stack in the foreground on the embedded default config, until Ctrl-C, with
// the guard's log on the terminal. `make run CONFIG=path` runs the guard on that config;
// `make run UPSTREAM=llama` puts llama.cpp's OpenAI server with a generated tiny model in place of
// the demo model, `make run UPSTREAM=http://host:port` a model server of the user's (both Envoy
// pools point at it).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { prepareRealServers, type RealServer, startLlama } from "./real-servers.js";
import { type DemoPool, loadGuardConfigObject, startStack } from "./stack.js";

const LISTEN_PORT = Number(process.env.GUARD_DEMO_PORT ?? 10000);

// Streamed answers paced like a hosted model (first token after 150 ms, then one every 30 ms), so a
// user sees tokens arrive through Envoy and the guard rather than in one burst.
const PACING = ["--first-token-ms", "150", "--inter-token-ms", "30"];

function flag(name: string): string | undefined {
  const value = process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
  return value === "" ? undefined : value;
}

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

/** The user's own model server: plain HTTP (Envoy's model clusters carry no TLS settings). */
function ownServer(url: string): DemoPool {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    fail(`UPSTREAM=${url}: expected demo, llama or http://host:port`);
  }
  if (parsed.protocol !== "http:") fail(`UPSTREAM=${url}: only http:// servers (put TLS in Envoy's cluster yourself)`);
  return { url: parsed.origin };
}

const upstream = flag("upstream") ?? "demo";
const configFile = flag("config");

let llama: RealServer | undefined;
let modelDir: string | undefined;
let own: DemoPool | undefined;
if (upstream === "llama") {
  modelDir = await mkdtemp(join(tmpdir(), "inference-guard-models-"));
  process.stdout.write("installing llama.cpp's server (first time: a ~5 minute compile) and generating its model…\n");
  llama = await startLlama(prepareRealServers(modelDir).gguf);
} else if (upstream !== "demo") {
  own = ownServer(upstream);
}
const pool = llama ?? own;

const stack = await startStack({
  fixedListenPort: LISTEN_PORT,
  failureModeAllow: false,
  echo: "guard",
  ...(configFile === undefined ? {} : { guardConfig: await loadGuardConfigObject(resolve(configFile)) }),
  ...(pool === undefined
    ? { demoArgs: { light: PACING, heavy: PACING } }
    : { upstreams: { light: pool, heavy: pool } }),
});
const guard = stack.guard;
const model = llama !== undefined ? "tiny" : own !== undefined ? "YOUR-MODEL" : "demo";
const examples =
  llama === undefined
    ? `    curl -si ${stack.url}/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model":"${model}","messages":[{"role":"user","content":"hello"}]}'
    curl -N ${stack.url}/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model":"${model}","stream":true,"messages":[{"role":"user","content":"tell me a story"}]}'
    curl -N ${stack.url}/api/chat -H 'content-type: application/json' \\
      -d '{"model":"${model}","messages":[{"role":"user","content":"tell me a story"}]}'`
    : `    curl -si ${stack.url}/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model":"tiny","messages":[{"role":"user","content":"hello"}],"max_tokens":40,"seed":1}'
    curl -N ${stack.url}/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model":"tiny","stream":true,"messages":[{"role":"user","content":"tell me a story"}],"max_tokens":200}'`;
process.stdout.write(`
inference-guard stack is up (Envoy → inference-guard → ${llama !== undefined ? "llama.cpp's server" : own !== undefined ? own.url : "demo model"}).

  Send requests to   ${stack.url}
${examples}
  Guard metrics      ${guard?.adminUrl ?? "(no guard)"}/metrics
  Guard health       ${guard?.adminUrl ?? "(no guard)"}/readyz
  Envoy admin        ${stack.envoy.adminUrl}
  Model servers      light ${stack.light.url}   heavy ${stack.heavy.url}
  Guard config       ${guard?.configFile ?? "-"}${configFile === undefined ? " (config/default.yaml)" : ` (from ${configFile})`}
  Guard log          below, prefixed [guard]

Ctrl-C stops everything.
`);

await new Promise<void>((resolve) => {
  process.once("SIGINT", () => resolve());
  process.once("SIGTERM", () => resolve());
});
process.stdout.write("stopping…\n");
await stack.stop();
await llama?.process.stop();
if (modelDir !== undefined) await rm(modelDir, { recursive: true, force: true });
