// `make run`: the demo stack in the foreground on the embedded default config, until Ctrl-C.
// `make run UPSTREAM=llama` (--upstream=llama): llama.cpp's OpenAI server with a generated tiny model
// in place of the demo model, behind the same Envoy and config.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { prepareRealServers, type RealServer, startLlama } from "./real-servers.js";
import { startStack } from "./stack.js";

const LISTEN_PORT = Number(process.env.GUARD_DEMO_PORT ?? 10000);

// Streamed answers paced like a hosted model (first token after 150 ms, then one every 30 ms), so a
// user sees tokens arrive through Envoy and the guard rather than in one burst.
const PACING = ["--first-token-ms", "150", "--inter-token-ms", "30"];

const upstream = process.argv.find((arg) => arg.startsWith("--upstream="))?.slice("--upstream=".length) ?? "demo";
if (upstream !== "demo" && upstream !== "llama") {
  process.stderr.write(`unknown upstream "${upstream}" (expected: demo, llama)\n`);
  process.exit(2);
}

let llama: RealServer | undefined;
let modelDir: string | undefined;
if (upstream === "llama") {
  modelDir = await mkdtemp(join(tmpdir(), "inference-guard-models-"));
  process.stdout.write("installing llama.cpp's server (first time: a ~5 minute compile) and generating its model…\n");
  llama = await startLlama(prepareRealServers(modelDir).gguf);
}

const stack = await startStack({
  fixedListenPort: LISTEN_PORT,
  failureModeAllow: false,
  ...(llama === undefined
    ? { demoArgs: { light: PACING, heavy: PACING } }
    : { upstreams: { light: llama, heavy: llama } }),
});
const guard = stack.guard;
const examples =
  llama === undefined
    ? `    curl -si ${stack.url}/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model":"demo","messages":[{"role":"user","content":"hello"}]}'
    curl -N ${stack.url}/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model":"demo","stream":true,"messages":[{"role":"user","content":"tell me a story"}]}'
    curl -N ${stack.url}/api/chat -H 'content-type: application/json' \\
      -d '{"model":"demo","messages":[{"role":"user","content":"tell me a story"}]}'`
    : `    curl -si ${stack.url}/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model":"tiny","messages":[{"role":"user","content":"hello"}],"max_tokens":40,"seed":1}'
    curl -N ${stack.url}/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model":"tiny","stream":true,"messages":[{"role":"user","content":"tell me a story"}],"max_tokens":200}'`;
process.stdout.write(`
inference-guard stack is up (Envoy → inference-guard → ${llama === undefined ? "demo model" : "llama.cpp's server"}).

  Send requests to   ${stack.url}
${examples}
  Guard metrics      ${guard?.adminUrl ?? "(no guard)"}/metrics
  Guard health       ${guard?.adminUrl ?? "(no guard)"}/readyz
  Envoy admin        ${stack.envoy.adminUrl}
  Model servers      light ${stack.light.url}   heavy ${stack.heavy.url}
  Guard config       ${guard?.configFile ?? "-"}

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
