// The official OpenAI Python SDK as a client of the end-to-end tests (test/e2e/clients/openai_stream.py),
// installed on first use by scripts/install-openai-python.sh.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import type { Test } from "tap";
import { PROJECT_ROOT } from "../../src/devstack/envoy.js";

export interface PythonResult {
  readonly text?: string;
  readonly usage?: { completion_tokens: number } | null;
  readonly error?: { class: string; message: string; code: string; type: string; status: number | null };
}

/** Runs test/e2e/clients/openai_stream.py: the official OpenAI Python SDK, default retries on. */
export function pythonSdk(
  t: Test,
  baseUrl: string,
  request: Record<string, unknown>,
  headers: Record<string, string> = {},
): PythonResult {
  const install = spawnSync("bash", [join(PROJECT_ROOT, "scripts", "install-openai-python.sh")], { encoding: "utf8" });
  t.equal(install.status, 0, `openai (Python) installed ${install.stderr}`);
  const ran = spawnSync(
    "python3",
    [
      join(PROJECT_ROOT, "test", "e2e", "clients", "openai_stream.py"),
      baseUrl,
      JSON.stringify(request),
      JSON.stringify(headers),
    ],
    {
      encoding: "utf8",
      env: { ...process.env, PYTHONPATH: join(PROJECT_ROOT, ".tools", "openai-python") },
      timeout: 60_000,
    },
  );
  t.equal(ran.status, 0, ran.stderr);
  return JSON.parse(ran.stdout) as PythonResult;
}
