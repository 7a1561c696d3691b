// decode (YAML) → defaults + validation (zod, every error with its path) → cross-checks → freeze.
// Outcomes are result values: a bad config is an expected outcome, not an exception.
import { readFile } from "node:fs/promises";
import { LineCounter, parseDocument } from "yaml";
import type { z } from "zod";
import { admissionConfigWarnings } from "../pipeline/admission/config.js";
import { cacheConfigErrors, cacheConfigWarnings } from "../pipeline/cache/config.js";
import { checkComplexityConfig } from "../pipeline/complexity/config.js";
import { configSchema, type GuardConfig } from "./schema.js";

/** Checks that need the whole config (one section against another), run after the schema passed. */
const CROSS_CHECKS: readonly ((config: GuardConfig) => ConfigIssue[])[] = [cacheConfigErrors, checkComplexityConfig];
const WARNINGS: readonly ((config: GuardConfig) => ConfigIssue[])[] = [cacheConfigWarnings, admissionConfigWarnings];

export interface ConfigIssue {
  /** Dotted path with [i] for array items, e.g. "routes[2].match.pathPrefix"; "" for the root. */
  readonly path: string;
  readonly message: string;
}

export type ConfigResult =
  | { readonly ok: true; readonly config: GuardConfig; readonly warnings: readonly ConfigIssue[] }
  | { readonly ok: false; readonly errors: readonly ConfigIssue[] };

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out;
}

function issuesFromZod(error: z.ZodError): ConfigIssue[] {
  return error.issues.flatMap((issue) => {
    // Strict objects report unknown keys on the parent; name each key so the path points at it.
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({
        path: formatPath([...issue.path, key]),
        message: "unknown key",
      }));
    }
    return [{ path: formatPath(issue.path), message: issue.message }];
  });
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

export function parseConfig(text: string): ConfigResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((error) => ({
        path: "",
        message: `YAML ${error.code} at line ${lineCounter.linePos(error.pos[0]).line}: ${error.message.split("\n")[0] ?? ""}`,
      })),
    };
  }
  const parsed = configSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) return { ok: false, errors: issuesFromZod(parsed.error) };
  const errors = CROSS_CHECKS.flatMap((check) => check(parsed.data));
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, config: deepFreeze(parsed.data), warnings: WARNINGS.flatMap((check) => check(parsed.data)) };
}

export async function loadConfigFile(file: string): Promise<ConfigResult> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    return { ok: false, errors: [{ path: "", message: `cannot read ${file}: ${(error as Error).message}` }] };
  }
  return parseConfig(text);
}
