// The shipped Kubernetes manifests (deploy/kubernetes), parsed for the tests that check them and
// the one that runs the pod they describe.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { PROJECT_ROOT } from "../../src/devstack/envoy.js";

// Parsed YAML walked by known paths: a wrong path yields undefined and fails its assertion.
// biome-ignore lint/suspicious/noExplicitAny: typing every walked path of foreign YAML would only restate the assertions
export type Doc = Record<string, any>;

export const K8S = join(PROJECT_ROOT, "deploy", "kubernetes");

/** Every document of a YAML file; a document that does not parse is an error naming the file. */
export async function docs(file: string): Promise<Doc[]> {
  return parseAllDocuments(await readFile(file, "utf8")).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((error) => error.message).join("; ")}`);
    return doc.toJSON() as Doc;
  });
}

/** Every resource of the manifests the kustomization may list. */
export async function manifests(): Promise<Doc[]> {
  const files = (await readdir(K8S)).filter((file) => file.endsWith(".yaml") && file !== "kustomization.yaml");
  return (await Promise.all(files.map((file) => docs(join(K8S, file))))).flat();
}

export function find(all: Doc[], kind: string, name: string): Doc {
  const found = all.find((doc) => doc.kind === kind && doc.metadata?.name === name);
  if (found === undefined) throw new Error(`no ${kind} ${name}`);
  return found;
}
