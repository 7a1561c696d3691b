// Shared by the contract tests: the example contracts compiled once per test file.
import { fileURLToPath } from "node:url";
import { type CompiledContracts, compileContracts } from "../../../src/contracts/compile.js";
import { Contract, type ContractSpec } from "../../../src/contracts/contract.js";
import { DEMO_BINDINGS } from "../../../src/demo/outputs.js";

/** The repository root (tests run from dist/test/unit/contracts). */
export const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
export const DEMO_PROTO = `${ROOT}proto/contracts`;

let compiled: Promise<CompiledContracts> | undefined;

export function demoContracts(): Promise<CompiledContracts> {
  compiled ??= compileContracts({ protoPaths: [DEMO_PROTO] }).then((result) => {
    if (!result.ok) throw new Error(`example contracts do not compile: ${JSON.stringify(result.errors)}`);
    return result.contracts;
  });
  return compiled;
}

export async function demoContract(task: string, overrides: Partial<ContractSpec> = {}): Promise<Contract> {
  const contracts = await demoContracts();
  const binding = DEMO_BINDINGS[task];
  if (binding === undefined) throw new Error(`no binding for ${task}`);
  const message = contracts.messages.get(binding.message);
  if (message === undefined) throw new Error(`no message ${binding.message}`);
  return new Contract(
    {
      message,
      payload: binding.payload,
      ...(binding.wrapField === undefined ? {} : { wrapField: binding.wrapField }),
      ...overrides,
    },
    contracts.validator,
    contracts.registry,
  );
}
