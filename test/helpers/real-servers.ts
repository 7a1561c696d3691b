// Real model servers behind Envoy and the guard (test/e2e/real-*.test.ts): installed on first use,
// their models generated into a temporary directory, each server and stack stopped with the test.
// Nothing here skips: a server that cannot be installed or started fails the test that wanted it.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Test } from "tap";
import {
  type LlamaOptions,
  prepareRealServers,
  type RealModels,
  type RealServer,
  startLlama,
  startMlserver,
} from "../../src/devstack/real-servers.js";
import type { Stack, StackOptions } from "../../src/devstack/stack.js";
import { stackFor } from "./e2e.js";

export async function realModelsFor(t: Test): Promise<RealModels> {
  const dir = await mkdtemp(join(tmpdir(), "inference-guard-models-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return prepareRealServers(dir);
}

export async function llamaFor(t: Test, models: RealModels, options: LlamaOptions = {}): Promise<RealServer> {
  const server = await startLlama(models.gguf, options);
  t.teardown(() => server.process.stop());
  return server;
}

export async function mlserverFor(t: Test, models: RealModels): Promise<RealServer> {
  const server = await startMlserver(models.mlserverRepository);
  t.teardown(() => server.process.stop());
  return server;
}

/** Envoy (+ the guard unless withGuard: false) with both clusters pointing at `server`. */
export function stackInFrontOf(t: Test, server: RealServer, options: StackOptions = {}): Promise<Stack> {
  return stackFor(t, { ...options, upstreams: { light: server, heavy: server } });
}
