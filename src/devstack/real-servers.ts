// Real model servers in place of the demo model: llama.cpp's OpenAI-compatible server
// (llama-cpp-python) and MLServer (Open Inference Protocol), from the venv that
// scripts/install-real-servers.sh builds, serving the models scripts/generate-real-models.py writes.
// The end-to-end tests (test/e2e/real-*.test.ts) and `make run UPSTREAM=llama` start them here.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { PROJECT_ROOT } from "./envoy.js";
import { freePort } from "./ports.js";
import { httpOk, type Managed, spawnManaged, waitUntil } from "./process.js";

const VENV_BIN = join(PROJECT_ROOT, ".tools", "real-servers", "bin");
export const REAL_PYTHON = join(VENV_BIN, "python");

export interface RealServer {
  readonly process: Managed;
  readonly url: string;
}

/** Model files of both servers under `dir` (see scripts/generate-real-models.py). */
export interface RealModels {
  readonly gguf: string;
  readonly mlserverRepository: string;
}

function run(what: string, command: string, args: readonly string[]): void {
  const ran = spawnSync(command, args, { cwd: PROJECT_ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  if (ran.status !== 0) throw new Error(`${what} failed (status ${ran.status}): ${ran.stderr}${ran.error ?? ""}`);
}

/**
 * Installs the servers (a no-op once installed) and writes their models into `dir`. Throws when
 * either fails: a test that needs a real server fails loudly rather than skipping.
 */
export function prepareRealServers(dir: string): RealModels {
  run("scripts/install-real-servers.sh", "bash", [join(PROJECT_ROOT, "scripts", "install-real-servers.sh")]);
  run("scripts/generate-real-models.py", REAL_PYTHON, [join(PROJECT_ROOT, "scripts", "generate-real-models.py"), dir]);
  return { gguf: join(dir, "llama", "tiny.gguf"), mlserverRepository: join(dir, "mlserver") };
}

function echoing(name: string, echo: boolean): { onOutput?: (chunk: string) => void } {
  return echo ? { onOutput: (chunk) => process.stdout.write(`[${name}] ${chunk}`) } : {};
}

export interface LlamaOptions {
  /** The context window in tokens (llama.cpp answers a longer prompt with 400 context_length_exceeded). */
  readonly contextTokens?: number;
  readonly echo?: boolean;
}

/** llama.cpp's server on a free loopback port; ready once it lists its model (it has no /health). */
export async function startLlama(gguf: string, options: LlamaOptions = {}): Promise<RealServer> {
  const port = await freePort();
  const proc = spawnManaged(
    "llama",
    REAL_PYTHON,
    [
      "-m",
      "llama_cpp.server",
      "--model",
      gguf,
      "--model_alias",
      "tiny",
      "--n_ctx",
      String(options.contextTokens ?? 512),
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
    ],
    echoing("llama", options.echo === true),
  );
  const url = `http://127.0.0.1:${port}`;
  await waitUntil("llama.cpp server", () => httpOk(`${url}/v1/models`), 60_000, proc);
  return { process: proc, url };
}

/** MLServer on free loopback ports (HTTP, gRPC, metrics: it opens all three), ready when its model is. */
export async function startMlserver(repository: string, echo = false): Promise<RealServer> {
  const [http, grpc, metrics] = [await freePort(), await freePort(), await freePort()];
  const proc = spawnManaged("mlserver", join(VENV_BIN, "mlserver"), ["start", repository], {
    env: {
      ...process.env,
      MLSERVER_HOST: "127.0.0.1",
      MLSERVER_HTTP_PORT: String(http),
      MLSERVER_GRPC_PORT: String(grpc),
      MLSERVER_METRICS_PORT: String(metrics),
    },
    ...echoing("mlserver", echo),
  });
  const url = `http://127.0.0.1:${http}`;
  await waitUntil("MLServer", () => httpOk(`${url}/v2/models/classifier/ready`), 60_000, proc);
  return { process: proc, url };
}
