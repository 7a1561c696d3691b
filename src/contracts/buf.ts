// Turns the contract .proto sources into a descriptor set with buf, the compiler that
// @bufbuild/buf installs as a platform binary (an optional dependency per OS and CPU). buf reads
// every import as source: buf/validate/validate.proto from gen/protovalidate, which `make build`
// prints from the descriptor @bufbuild/protovalidate embeds (so it is the exact version the
// validator reads), and the well-known types from buf itself. See docs/contracts.md for why buf.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { create, fromBinary } from "@bufbuild/protobuf";
import { type FileDescriptorSet, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { ContractSourceError } from "./source-error.js";

/** Written by `make build` (target gen/protovalidate); the image copies it beside dist/. */
export const PROTOVALIDATE_DIR = fileURLToPath(new URL("../../../gen/protovalidate", import.meta.url));

const VALIDATE_PROTO = "buf/validate/validate.proto";

/** A .proto file: the protoPaths entry it was found under and its name relative to that root. */
export interface ProtoSource {
  readonly root: string;
  readonly name: string;
}

type Found<T> = ({ readonly ok: true } & T) | { readonly ok: false; readonly errors: ContractSourceError[] };

/**
 * Every .proto file under each root; a root that does not exist holds none. A name is an import
 * path, so two roots holding the same one are an error rather than one file silently hiding the other.
 */
export async function findProtoSources(protoPaths: readonly string[]): Promise<Found<{ sources: ProtoSource[] }>> {
  const errors: ContractSourceError[] = [];
  const sources: ProtoSource[] = [];
  // The same directory named twice (the config's and `lint --proto`) is searched once.
  const roots = protoPaths.filter(
    (root, index) => protoPaths.findIndex((other) => resolve(other) === resolve(root)) === index,
  );
  for (const root of roots) {
    const found = await findProtoFiles(root);
    if (found.error !== undefined) errors.push({ file: root, message: found.error });
    for (const name of found.files) {
      const first = sources.find((source) => source.name === name);
      if (first === undefined) sources.push({ root, name });
      else
        errors.push({
          file: join(root, name),
          message: `${name} is also under ${first.root}: a name must be unique across contracts.protoPaths`,
        });
    }
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, sources };
}

/**
 * The descriptor set of the sources and everything they import, with source info (the line
 * numbers rule errors are reported at); errors name the user's files.
 */
export async function describeSources(sources: readonly ProtoSource[]): Promise<Found<{ set: FileDescriptorSet }>> {
  if (sources.length === 0) return { ok: true, set: create(FileDescriptorSetSchema) };
  const buf = bufBinary();
  if (typeof buf !== "string") return { ok: false, errors: [buf] };
  const validate = join(PROTOVALIDATE_DIR, VALIDATE_PROTO);
  if ((await stat(validate).catch(() => undefined)) === undefined) {
    return { ok: false, errors: [{ file: validate, message: "missing: `make build` prints it (gen/protovalidate)" }] };
  }
  // A copy kept from protoc days would clash with the guard's own (buf: "contained in multiple modules").
  const copies = sources.filter((source) => source.name === VALIDATE_PROTO);
  if (copies.length > 0) {
    return {
      ok: false,
      errors: copies.map((copy) => ({
        file: join(copy.root, copy.name),
        message: `the guard provides ${VALIDATE_PROTO} (the version its validator reads): delete this copy`,
      })),
    };
  }
  // buf compiles a workspace of modules named by paths inside it: each root that holds sources
  // (buf rejects a module without .proto files) is linked in as root<i>, beside gen/protovalidate.
  const roots = [...new Set(sources.map((source) => source.root))];
  const modules = new Map([
    ...roots.map((root, index) => [`root${index}`, root] as const),
    ["protovalidate", PROTOVALIDATE_DIR],
  ]);
  const work = await mkdtemp(join(tmpdir(), "guard-contracts-"));
  try {
    const workspace = join(work, "workspace");
    await mkdir(workspace);
    for (const [link, root] of modules) await symlink(resolve(root), join(workspace, link), "dir");
    await writeFile(
      join(workspace, "buf.yaml"),
      `version: v2\nmodules:\n${[...modules.keys()].map((link) => `  - path: ${link}\n`).join("")}`,
    );
    const outFile = join(work, "out.binpb");
    const args = [
      "build",
      ".",
      ...sources.flatMap((source) => ["--path", join(`root${roots.indexOf(source.root)}`, source.name)]),
      "--as-file-descriptor-set",
      "--error-format=json",
      "-o",
      outFile,
    ];
    // buf keeps a module cache; the temporary directory holds it, as the image's root is read-only.
    // --path names are relative to the working directory.
    const result = await run(buf, args, {
      cwd: workspace,
      env: { ...process.env, BUF_CACHE_DIR: join(work, "cache") },
    });
    if (result.code !== 0) {
      const parsed = parseBufErrors(result.stderr, modules);
      return {
        ok: false,
        errors: parsed.length > 0 ? parsed : [{ file: "buf", message: `exited with ${result.code}` }],
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

let foundBuf: string | ContractSourceError | undefined;

/**
 * The buf binary of this machine: @bufbuild/buf lists one package per OS and CPU as optional
 * dependencies, and npm installs the one whose `os` and `cpu` match. Its own bin/buf is a Node
 * wrapper that would start a second Node process on every compile.
 */
function bufBinary(): string | ContractSourceError {
  foundBuf ??= findBufBinary();
  return foundBuf;
}

function findBufBinary(): string | ContractSourceError {
  const bufManifest = createRequire(import.meta.url).resolve("@bufbuild/buf/package.json");
  const fromBuf = createRequire(bufManifest);
  const { optionalDependencies = {} } = readJson(bufManifest) as { optionalDependencies?: Record<string, string> };
  for (const name of Object.keys(optionalDependencies)) {
    let manifest: string;
    try {
      manifest = fromBuf.resolve(`${name}/package.json`);
    } catch {
      continue;
    }
    const { os = [], cpu = [] } = readJson(manifest) as { os?: string[]; cpu?: string[] };
    if (os.includes(process.platform) && cpu.includes(process.arch)) {
      return join(dirname(manifest), "bin", process.platform === "win32" ? "buf.exe" : "buf");
    }
  }
  return {
    file: bufManifest,
    message: `no buf binary for ${process.platform}-${process.arch}: npm installs it (an optional dependency of @bufbuild/buf) unless optional dependencies are omitted`,
  };
}

function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, "utf8"));
}

function run(
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { ...options, maxBuffer: 4 * 1024 * 1024 }, (error, _stdout, stderr) => {
      if (error === null) return resolve({ code: 0, stderr });
      // Not started at all (the binary was removed after npm installed it): say which one.
      if (typeof error.code === "string") return resolve({ code: 1, stderr: `${command}: ${error.message}` });
      resolve({ code: error.code ?? 1, stderr });
    });
  });
}

/** One `--error-format=json` object per line; `path` is the module link joined with the file's name. */
interface BufError {
  readonly path?: string;
  readonly start_line?: number;
  readonly start_column?: number;
  readonly end_line?: number;
  readonly end_column?: number;
  readonly message?: string;
}

/**
 * buf's compile errors, at the user's file and line; anything else buf says (a failure that is
 * not about a line, such as a bad workspace) becomes one error as it was written.
 */
function parseBufErrors(stderr: string, modules: ReadonlyMap<string, string>): ContractSourceError[] {
  const errors: ContractSourceError[] = [];
  const other: string[] = [];
  for (const line of stderr.split("\n")) {
    if (line.trim() === "") continue;
    const parsed = parseJsonLine(line);
    if (parsed?.path === undefined || parsed.message === undefined) {
      other.push(line.trim().replace(/^Failure: /, ""));
      continue;
    }
    const [link = "", ...rest] = parsed.path.split("/");
    const root = modules.get(link);
    const file = root === undefined ? parsed.path : join(root, ...rest);
    const message = withSource(parsed.message, parsed, file);
    errors.push(parsed.start_line === undefined ? { file, message } : { file, line: parsed.start_line, message });
  }
  if (other.length > 0) {
    // Such messages name modules by their links in the workspace: say the user's directories.
    let message = other.join(" ");
    for (const [link, root] of modules) message = message.replaceAll(`"${link}"`, JSON.stringify(root));
    errors.push({ file: "buf", message });
  }
  return errors;
}

/**
 * Some of buf's messages quote nothing ("mismatched types", "imported file does not exist"): they
 * get the source text they point at, so the error says which value or which import.
 */
function withSource(message: string, at: BufError, file: string): string {
  const { start_line: line, start_column: start, end_line: endLine, end_column: end } = at;
  if (/[`"]/.test(message) || line === undefined || start === undefined || end === undefined || endLine !== line) {
    return message;
  }
  let text: string | undefined;
  try {
    text = readFileSync(file, "utf8").split("\n")[line - 1];
  } catch {
    return message;
  }
  // buf counts columns in bytes.
  const source =
    text === undefined
      ? ""
      : Buffer.from(text)
          .subarray(start - 1, end - 1)
          .toString()
          .trim();
  return source === "" ? message : `${message}: ${source}`;
}

function parseJsonLine(line: string): BufError | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    return JSON.parse(line) as BufError;
  } catch {
    return undefined;
  }
}
