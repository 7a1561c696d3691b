// Compiles contract .proto files from source at startup: buf turns them into descriptors
// (buf.ts), then every message is test-compiled (rule-check.ts), so a bad rule stops startup
// instead of failing the first request. See docs/contracts.md for why buf.
import { join } from "node:path";
import { createFileRegistry, type DescMessage, type FileRegistry } from "@bufbuild/protobuf";
import { createValidator, type Validator } from "@bufbuild/protovalidate";
import { describeSources, findProtoSources } from "./buf.js";
import { celSyntaxErrors, dedupeProbeErrors, type ProbeError, probeError } from "./rule-check.js";
import type { ContractSourceError } from "./source-error.js";
import { type Locator, locator } from "./source-location.js";

// The result's error type and its formatting are part of this module's interface.
export { type ContractSourceError, formatSourceError } from "./source-error.js";

export interface CompiledContracts {
  readonly registry: FileRegistry;
  readonly validator: Validator;
  /** Contract messages by full name (messages of the user's files, not of their imports). */
  readonly messages: ReadonlyMap<string, DescMessage>;
  /** The .proto files compiled, as paths under protoPaths. */
  readonly files: readonly string[];
}

export type CompileResult =
  | { readonly ok: true; readonly contracts: CompiledContracts }
  | { readonly ok: false; readonly errors: readonly ContractSourceError[] };

export interface CompileOptions {
  readonly protoPaths: readonly string[];
}

export async function compileContracts(options: CompileOptions): Promise<CompileResult> {
  const found = await findProtoSources(options.protoPaths);
  if (!found.ok) return found;
  const { sources } = found;
  const userPath = (name: string): string => {
    const source = sources.find((candidate) => candidate.name === name);
    return source === undefined ? name : join(source.root, name);
  };
  const described = await describeSources(sources);
  if (!described.ok) return described;

  let registry: FileRegistry;
  try {
    registry = createFileRegistry(described.set);
  } catch (error) {
    return { ok: false, errors: [{ file: "buf", message: `descriptor set rejected: ${(error as Error).message}` }] };
  }
  const validator = createValidator({ registry });
  const userFiles = new Set(sources.map((source) => source.name));
  const messages = new Map<string, { message: DescMessage; locate: Locator }>();
  for (const file of registry.files) {
    if (!userFiles.has(file.proto.name)) continue;
    const locate = locator(file, userPath(file.proto.name));
    for (const message of allMessages(file.messages)) messages.set(message.typeName, { message, locate });
  }
  const errors: ContractSourceError[] = [];
  // Syntax first: every bad expression is listed, and the probes would only repeat them.
  for (const { message, locate } of messages.values()) errors.push(...celSyntaxErrors(message, locate));
  if (errors.length > 0) return { ok: false, errors };
  const probes: ProbeError[] = [];
  for (const { message, locate } of messages.values()) {
    const probe = probeError(message, validator, registry, locate);
    if (probe !== undefined) probes.push(probe);
  }
  errors.push(...dedupeProbeErrors(probes));
  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    contracts: {
      registry,
      validator,
      messages: new Map([...messages].map(([name, entry]) => [name, entry.message])),
      files: sources.map((source) => join(source.root, source.name)),
    },
  };
}

function allMessages(messages: readonly DescMessage[]): DescMessage[] {
  return messages.flatMap((message) => [message, ...allMessages(message.nestedMessages)]);
}

/** The view of compiled contracts that crossCheckContracts (config.ts) needs. */
export function catalogueOf(contracts: CompiledContracts): {
  fieldsOf(message: string): readonly string[] | undefined;
} {
  return {
    fieldsOf: (message) =>
      contracts.messages
        .get(message)
        ?.fields.flatMap((field) => (field.jsonName === field.name ? [field.name] : [field.name, field.jsonName])),
  };
}
