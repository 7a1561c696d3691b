// Everything startup (and a reload) must get right before the guard serves: the config file, and
// the output contracts it binds compiled from source and checked against the bindings. One pass:
// contract problems are reported together with the config's own, whenever the contracts section
// and the binding routes parsed.

import type { ConfigIssue } from "../config-kit/issues.js";
import { type CompiledContracts, catalogueOf, compileContracts, formatSourceError } from "../contracts/compile.js";
import { crossCheckContracts } from "../contracts/config.js";
import type { ParsedParts } from "./checks.js";
import { readConfigText, resultOf, validateText } from "./load.js";
import type { GuardConfig } from "./schema.js";

export type PreparedGuard =
  | {
      readonly ok: true;
      readonly config: GuardConfig;
      /** Absent when no route binds a contract (the guard then compiles none). */
      readonly contracts?: CompiledContracts;
      readonly warnings: readonly ConfigIssue[];
    }
  | { readonly ok: false; readonly errors: readonly ConfigIssue[]; readonly warnings: readonly ConfigIssue[] };

type ContractsOutcome = { readonly errors: readonly ConfigIssue[]; readonly compiled?: CompiledContracts };

async function prepareContracts(parts: ParsedParts | undefined): Promise<ContractsOutcome> {
  const section = parts?.sections.contracts;
  if (parts === undefined || section === undefined) return { errors: [] };
  // Every item of the routes list is here, valid or not, so the cross-check's paths keep the file's indices.
  const routes = parts.routes.map(({ parts: route }) => ({ contract: route.contract }));
  if (!routes.some((route) => route.contract !== undefined)) return { errors: [] };
  const compiled = await compileContracts(section);
  if (!compiled.ok) {
    // The path is left empty: formatSourceError already says file:line, which is where to look.
    return { errors: compiled.errors.map((error) => ({ path: "", message: formatSourceError(error) })) };
  }
  return { errors: crossCheckContracts({ routes }, catalogueOf(compiled.contracts)), compiled: compiled.contracts };
}

export async function prepareText(text: string): Promise<PreparedGuard> {
  const validation = validateText(text);
  const contracts = await prepareContracts(validation.parts);
  const result = resultOf({ ...validation, errors: [...validation.errors, ...contracts.errors] });
  if (!result.ok || contracts.compiled === undefined) return result;
  return { ...result, contracts: contracts.compiled };
}

export async function prepareGuard(file: string): Promise<PreparedGuard> {
  const read = await readConfigText(file);
  return "error" in read ? { ok: false, errors: [read.error], warnings: [] } : prepareText(read.text);
}
