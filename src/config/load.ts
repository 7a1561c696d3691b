// One pass over the file: decode (YAML) → defaults and validation of every part on its own (zod,
// each error with its path) → checks across parts → freeze. Every problem is reported at once:
// a part that fails does not stop the others from being validated, so fixing one error does not
// reveal the next. Outcomes are result values: a bad config is an expected outcome, not an exception.
import { readFile } from "node:fs/promises";
import { LineCounter, parseDocument } from "yaml";
import type { z } from "zod";
import type { ConfigIssue } from "../config-kit/issues.js";
import { ERROR_CHECKS, type ParsedParts, type ParsedRoute, WARNING_CHECKS } from "./checks.js";
import { type GuardConfig, type RouteConfig, routeSchema, SECTIONS, type Sections } from "./schema.js";

export type ConfigResult =
  | { readonly ok: true; readonly config: GuardConfig; readonly warnings: readonly ConfigIssue[] }
  | { readonly ok: false; readonly errors: readonly ConfigIssue[]; readonly warnings: readonly ConfigIssue[] };

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out;
}

function issuesFromZod(error: z.ZodError, at: readonly PropertyKey[]): ConfigIssue[] {
  return error.issues.flatMap((issue) => {
    // Strict objects report unknown keys on the parent; name each key so the path points at it.
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({ path: formatPath([...at, ...issue.path, key]), message: "unknown key" }));
    }
    return [{ path: formatPath([...at, ...issue.path]), message: issue.message }];
  });
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

function parseSections(file: Readonly<Record<string, unknown>>, errors: ConfigIssue[]): Partial<Sections> {
  const sections: Partial<Sections> = {};
  for (const name of Object.keys(SECTIONS) as (keyof Sections)[]) {
    const parsed = SECTIONS[name].safeParse(file[name]);
    if (parsed.success) Object.assign(sections, { [name]: parsed.data });
    else errors.push(...issuesFromZod(parsed.error, [name]));
  }
  return sections;
}

/** The parts of an invalid route that are valid on their own, so checks across routes still see them. */
function validParts(item: unknown): Partial<RouteConfig> {
  if (item === null || typeof item !== "object") return {};
  const fields = item as Readonly<Record<string, unknown>>;
  const parts: Partial<RouteConfig> = {};
  for (const key of Object.keys(routeSchema.shape) as (keyof RouteConfig)[]) {
    // An absent key would take its default (match: everything), a guess the checks must not build on.
    if (!(key in fields)) continue;
    const parsed = routeSchema.shape[key].safeParse(fields[key]);
    if (parsed.success && parsed.data !== undefined) Object.assign(parts, { [key]: parsed.data });
  }
  return parts;
}

/** Route by route, so one broken route leaves the others (and the checks between them) standing. */
function parseRoutes(value: unknown, errors: ConfigIssue[]): ParsedRoute[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    errors.push({ path: "routes", message: "expected a list of routes" });
    return [];
  }
  return value.map((item: unknown, index): ParsedRoute => {
    const parsed = routeSchema.safeParse(item);
    if (parsed.success) return { index, parts: parsed.data, route: parsed.data };
    errors.push(...issuesFromZod(parsed.error, ["routes", index]));
    return { index, parts: validParts(item) };
  });
}

function isComplete(sections: Partial<Sections>): sections is Sections {
  return Object.keys(SECTIONS).every((name) => name in sections);
}

/** Everything one pass found; `parts` is absent when the text could not even be decoded. */
export interface Validation {
  readonly errors: readonly ConfigIssue[];
  readonly warnings: readonly ConfigIssue[];
  readonly parts?: ParsedParts;
}

/** Validates a decoded document (what YAML or JSON parsing returns). */
export function validateDocument(document: unknown): Validation {
  const file = document ?? {};
  if (typeof file !== "object" || Array.isArray(file)) {
    return { errors: [{ path: "", message: "expected a mapping of sections" }], warnings: [] };
  }
  const fields = file as Readonly<Record<string, unknown>>;
  const errors: ConfigIssue[] = [];
  const sections = parseSections(fields, errors);
  const parts: ParsedParts = { sections, routes: parseRoutes(fields.routes, errors), written: Object.keys(fields) };
  errors.push(...ERROR_CHECKS.flatMap((check) => check(parts)));
  return { errors, warnings: WARNING_CHECKS.flatMap((check) => check(parts)), parts };
}

export function validateText(text: string): Validation {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter });
  if (doc.errors.length > 0) {
    // Nothing past a syntax error can be trusted; every syntax error is reported, though.
    return {
      errors: doc.errors.map((error) => ({
        path: "",
        message: `YAML ${error.code} at line ${lineCounter.linePos(error.pos[0]).line}: ${error.message.split("\n")[0] ?? ""}`,
      })),
      warnings: [],
    };
  }
  return validateDocument(doc.toJS());
}

/** The frozen config when the pass found no error. */
export function resultOf({ errors, warnings, parts }: Validation): ConfigResult {
  const routes = parts?.routes.flatMap(({ route }) => (route === undefined ? [] : [route]));
  if (errors.length > 0 || parts === undefined || routes?.length !== parts.routes.length || !isComplete(parts.sections))
    return { ok: false, errors, warnings };
  const config: GuardConfig = { ...parts.sections, routes };
  return { ok: true, config: deepFreeze(config), warnings };
}

export function parseConfig(text: string): ConfigResult {
  return resultOf(validateText(text));
}

export async function readConfigText(file: string): Promise<{ text: string } | { error: ConfigIssue }> {
  try {
    return { text: await readFile(file, "utf8") };
  } catch (error) {
    return { error: { path: "", message: `cannot read ${file}: ${(error as Error).message}` } };
  }
}

export async function loadConfigFile(file: string): Promise<ConfigResult> {
  const read = await readConfigText(file);
  return "error" in read ? { ok: false, errors: [read.error], warnings: [] } : parseConfig(read.text);
}
