// `make run`: the demo stack in the foreground on the embedded default config, until Ctrl-C.
import { startStack } from "./stack.js";

const LISTEN_PORT = Number(process.env.GUARD_DEMO_PORT ?? 10000);

// Streamed answers paced like a hosted model (first token after 150 ms, then one every 30 ms), so a
// user sees tokens arrive through Envoy and the guard rather than in one burst.
const PACING = ["--first-token-ms", "150", "--inter-token-ms", "30"];

const stack = await startStack({
  fixedListenPort: LISTEN_PORT,
  failureModeAllow: false,
  demoArgs: { light: PACING, heavy: PACING },
});
const guard = stack.guard;
process.stdout.write(`
inference-guard demo stack is up (Envoy → inference-guard → demo model).

  Send requests to   ${stack.url}
    curl -si ${stack.url}/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model":"demo","messages":[{"role":"user","content":"hello"}]}'
    curl -N ${stack.url}/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model":"demo","stream":true,"messages":[{"role":"user","content":"tell me a story"}]}'
    curl -N ${stack.url}/api/chat -H 'content-type: application/json' \\
      -d '{"model":"demo","messages":[{"role":"user","content":"tell me a story"}]}'
  Guard metrics      ${guard?.adminUrl ?? "(no guard)"}/metrics
  Guard health       ${guard?.adminUrl ?? "(no guard)"}/readyz
  Envoy admin        ${stack.envoy.adminUrl}
  Demo model pools   light ${stack.light.url}   heavy ${stack.heavy.url}
  Guard config       ${guard?.configFile ?? "-"}

Ctrl-C stops everything.
`);

await new Promise<void>((resolve) => {
  process.once("SIGINT", () => resolve());
  process.once("SIGTERM", () => resolve());
});
process.stdout.write("stopping…\n");
await stack.stop();
