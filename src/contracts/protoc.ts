// Turns the contract .proto sources into a descriptor set with protoc (Debian protobuf-compiler).
// protoc parses them against a descriptor set made from the descriptors the registry packages
// embed (buf/validate/validate.proto from @bufbuild/protovalidate, the well-known types from
// @bufbuild/protobuf), so no validate.proto source and no network are needed. See
// docs/contracts.md for why protoc.
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { create, type DescFile, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type FileDescriptorSet,
  FileDescriptorSetSchema,
  file_google_protobuf_any,
  file_google_protobuf_descriptor,
  file_google_protobuf_duration,
  file_google_protobuf_empty,
  file_google_protobuf_field_mask,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
} from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import type { ContractSourceError } from "./source-error.js";

/** A .proto file: the protoPaths entry it was found under and its name relative to that root. */
export interface ProtoSource {
  readonly root: string;
  readonly name: string;
}

type Found<T> = ({ readonly ok: true } & T) | { readonly ok: false; readonly errors: ContractSourceError[] };

/** The only imports contracts get without a source file; their descriptors ship in npm packages. */
const EMBEDDED_FILES: readonly DescFile[] = [
  file_google_protobuf_descriptor,
  file_google_protobuf_duration,
  file_google_protobuf_timestamp,
  file_google_protobuf_field_mask,
  file_google_protobuf_any,
  file_google_protobuf_empty,
  file_google_protobuf_struct,
  file_google_protobuf_wrappers,
  file_buf_validate_validate,
];

/** Every .proto file under each root; a root that does not exist holds none. */
export async function findProtoSources(protoPaths: readonly string[]): Promise<Found<{ sources: ProtoSource[] }>> {
  const errors: ContractSourceError[] = [];
  const sources: ProtoSource[] = [];
  for (const root of protoPaths) {
    const found = await findProtoFiles(root);
    if (found.error !== undefined) errors.push({ file: root, message: found.error });
    for (const name of found.files) sources.push({ root, name });
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, sources };
}

/**
 * The descriptor set of the sources and everything they import, with source info (protoc's
 * line numbers); errors carry the user's paths through `userPath`.
 */
export async function describeSources(
  sources: readonly ProtoSource[],
  protoPaths: readonly string[],
  protoc: string,
  userPath: (name: string) => string,
): Promise<Found<{ set: FileDescriptorSet }>> {
  const embedded = create(FileDescriptorSetSchema, { file: EMBEDDED_FILES.map((file) => file.proto) });
  if (sources.length === 0) return { ok: true, set: embedded };
  const work = await mkdtemp(join(tmpdir(), "guard-contracts-"));
  try {
    const depsFile = join(work, "deps.pb");
    const outFile = join(work, "out.pb");
    await writeFile(depsFile, toBinary(FileDescriptorSetSchema, embedded));
    const args = [
      `--descriptor_set_in=${depsFile}`,
      ...protoPaths.map((root) => `--proto_path=${root}`),
      "--include_imports",
      "--include_source_info",
      `--descriptor_set_out=${outFile}`,
      ...[...new Set(sources.map((source) => source.name))],
    ];
    const result = await runProtoc(protoc, args);
    if (result.code === "missing") {
      return {
        ok: false,
        errors: [{ file: protoc, message: "protoc not found: install protobuf-compiler or set contracts.protoc" }],
      };
    }
    if (result.code !== 0) {
      const parsed = parseProtocErrors(result.stderr, userPath);
      return {
        ok: false,
        errors: parsed.length > 0 ? parsed : [{ file: "protoc", message: `exited with ${result.code}` }],
      };
    }
    return { ok: true, set: fromBinary(FileDescriptorSetSchema, await readFile(outFile)) };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function findProtoFiles(root: string): Promise<{ files: string[]; error?: string }> {
  const info = await stat(root).catch(() => undefined);
  // A missing directory means "no contracts here": an empty config must start.
  if (info === undefined) return { files: [] };
  if (!info.isDirectory()) return { files: [], error: "not a directory" };
  try {
    const entries = await readdir(root, { recursive: true, withFileTypes: true });
    const files = entries
      .filter((entry) => entry.isFile() && entry.name.endsWith(".proto"))
      .map((entry) => relative(root, join(entry.parentPath, entry.name)))
      .sort();
    return { files };
  } catch (error) {
    return { files: [], error: (error as Error).message };
  }
}

function runProtoc(protoc: string, args: string[]): Promise<{ code: number | "missing"; stderr: string }> {
  return new Promise((resolve) => {
    execFile(protoc, args, { maxBuffer: 4 * 1024 * 1024 }, (error, _stdout, stderr) => {
      if (error === null) return resolve({ code: 0, stderr });
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return resolve({ code: "missing", stderr: "" });
      resolve({ code: typeof error.code === "number" ? error.code : 1, stderr });
    });
  });
}

const PROTOC_LINE = /^(.+?):(\d+):(\d+): (.*)$/;
const PROTOC_FILE = /^(.+?\.proto): (.*)$/;

function parseProtocErrors(stderr: string, resolveFile: (name: string) => string): ContractSourceError[] {
  const errors: ContractSourceError[] = [];
  for (const line of stderr.split("\n")) {
    if (line.trim() === "") continue;
    const withLine = PROTOC_LINE.exec(line);
    if (withLine !== null) {
      errors.push({ file: resolveFile(withLine[1] ?? ""), line: Number(withLine[2]), message: withLine[4] ?? "" });
      continue;
    }
    const withFile = PROTOC_FILE.exec(line);
    if (withFile !== null) errors.push({ file: resolveFile(withFile[1] ?? ""), message: withFile[2] ?? "" });
    else errors.push({ file: "protoc", message: line });
  }
  return errors;
}
