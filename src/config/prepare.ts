// Everything startup (and a reload) must get right before the guard serves: the config file, and
// the output contracts it binds compiled from source and checked against the bindings.
import { type CompiledContracts, catalogueOf, compileContracts, formatSourceError } from "../contracts/compile.js";
import { crossCheckContracts } from "../contracts/config.js";
import { type ConfigIssue, type ConfigResult, loadConfigFile, parseConfig } from "./load.js";
import type { GuardConfig } from "./schema.js";

export type PreparedGuard =
  | {
      readonly ok: true;
      readonly config: GuardConfig;
      /** Absent when no route binds a contract (the guard then needs no protoc). */
      readonly contracts?: CompiledContracts;
      readonly warnings: readonly ConfigIssue[];
    }
  | { readonly ok: false; readonly errors: readonly ConfigIssue[] };

export async function prepareLoaded(loaded: ConfigResult): Promise<PreparedGuard> {
  if (!loaded.ok) return loaded;
  const { config } = loaded;
  if (!config.routes.some((route) => route.contract !== undefined)) return loaded;
  const compiled = await compileContracts(config.contracts);
  if (!compiled.ok) {
    // The path is left empty: formatSourceError already says file:line, which is where to look.
    return { ok: false, errors: compiled.errors.map((error) => ({ path: "", message: formatSourceError(error) })) };
  }
  const issues = crossCheckContracts(config, catalogueOf(compiled.contracts));
  if (issues.length > 0) return { ok: false, errors: issues };
  return { ...loaded, contracts: compiled.contracts };
}

export async function prepareGuard(file: string): Promise<PreparedGuard> {
  return prepareLoaded(await loadConfigFile(file));
}

export async function prepareText(text: string): Promise<PreparedGuard> {
  return prepareLoaded(parseConfig(text));
}
