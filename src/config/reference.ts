// The configuration reference, rendered from the schema itself so the documented defaults are the
// defaults: docs/config.md (every key with its type, default and bounds) and config/schema.json
// (JSON Schema for editors: `# yaml-language-server: $schema=…`). Run as a script (`make docs`), it
// writes both; test/unit/config/reference.test.ts fails when a committed file differs.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { configSchema } from "./schema.js";

export const CONFIG_REFERENCE_DOC = fileURLToPath(new URL("../../../docs/config.md", import.meta.url));
export const CONFIG_JSON_SCHEMA = fileURLToPath(new URL("../../../config/schema.json", import.meta.url));

/** The subset of JSON Schema that z.toJSONSchema writes for the guard's config. */
export interface JsonSchemaNode {
  readonly type?: string;
  readonly default?: unknown;
  readonly const?: unknown;
  readonly enum?: readonly unknown[];
  readonly anyOf?: readonly JsonSchemaNode[];
  readonly properties?: Readonly<Record<string, JsonSchemaNode>>;
  readonly required?: readonly string[];
  readonly additionalProperties?: JsonSchemaNode | boolean;
  readonly propertyNames?: JsonSchemaNode;
  readonly items?: JsonSchemaNode;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: number;
  readonly exclusiveMaximum?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly pattern?: string;
  readonly format?: string;
}

/** What a config file may contain, before defaults: the schema as a user writes against it. */
export function configJsonSchema(): JsonSchemaNode & { readonly $schema?: string } {
  // Refinements across keys (e.g. limit.min ≤ limit.max) have no JSON Schema form; the guard checks them.
  return z.toJSONSchema(configSchema, { io: "input", unrepresentable: "any" }) as JsonSchemaNode;
}

export interface ReferenceRow {
  readonly path: string;
  readonly type: string;
  readonly required: boolean;
  /** The default as YAML would show it; absent when the key has none. */
  readonly default?: string;
  readonly bounds: string;
}

/** A code span that may hold backticks itself. */
function code(text: string): string {
  return text.includes("`") ? `\`\` ${text} \`\`` : `\`${text}\``;
}

function typeOf(node: JsonSchemaNode): string {
  if (node.enum !== undefined) return node.enum.map((value) => JSON.stringify(value)).join(" | ");
  if (node.const !== undefined) return JSON.stringify(node.const);
  if (node.anyOf !== undefined) return [...new Set(node.anyOf.map(typeOf))].join(" or ");
  if (node.type === "array") return `list of ${node.items === undefined ? "any" : typeOf(node.items)}`;
  if (node.type === "object" && node.properties === undefined && typeof node.additionalProperties === "object")
    return `map of ${typeOf(node.additionalProperties)}`;
  return node.type ?? "any";
}

function boundsOf(node: JsonSchemaNode): string {
  const bounds: string[] = [];
  if (node.minimum !== undefined && node.minimum > Number.MIN_SAFE_INTEGER) bounds.push(`≥ ${node.minimum}`);
  if (node.exclusiveMinimum !== undefined) bounds.push(`> ${node.exclusiveMinimum}`);
  // z.int() bounds every integer by the safe range: no limit a user needs to know.
  if (node.maximum !== undefined && node.maximum < Number.MAX_SAFE_INTEGER) bounds.push(`≤ ${node.maximum}`);
  if (node.exclusiveMaximum !== undefined) bounds.push(`< ${node.exclusiveMaximum}`);
  if (node.minLength !== undefined) bounds.push(`length ≥ ${node.minLength}`);
  if (node.maxLength !== undefined) bounds.push(`length ≤ ${node.maxLength}`);
  if (node.minItems !== undefined) bounds.push(`≥ ${node.minItems} items`);
  if (node.maxItems !== undefined) bounds.push(`≤ ${node.maxItems} items`);
  if (node.format !== undefined) bounds.push(node.format);
  if (node.pattern !== undefined) bounds.push(code(node.pattern));
  for (const choice of node.anyOf ?? []) {
    const inner = boundsOf(choice);
    if (inner !== "") bounds.push(inner);
  }
  return bounds.join(", ");
}

/** Every key, depth first in the schema's order; list items as `[]`, map entries as `<name>`. */
export function referenceRows(schema: JsonSchemaNode = configJsonSchema()): ReferenceRow[] {
  const rows: ReferenceRow[] = [];
  const visit = (node: JsonSchemaNode, path: string, required: boolean): void => {
    // A section (or a list item's shape) is the heading of its keys, not a row of its own.
    if (node.properties !== undefined) {
      for (const [key, child] of Object.entries(node.properties))
        visit(child, path === "" ? key : `${path}.${key}`, node.required?.includes(key) ?? false);
      return;
    }
    rows.push({
      path,
      type: typeOf(node),
      required,
      ...(node.default === undefined ? {} : { default: JSON.stringify(node.default) }),
      bounds: boundsOf(node),
    });
    if (node.items?.properties !== undefined) visit(node.items, `${path}[]`, false);
    const entries = node.additionalProperties;
    if (typeof entries === "object" && entries.properties !== undefined) visit(entries, `${path}.<name>`, false);
  };
  visit(schema, "", false);
  return rows;
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|");
}

export function renderConfigReference(rows: readonly ReferenceRow[] = referenceRows()): string {
  const sections = new Map<string, ReferenceRow[]>();
  for (const row of rows) {
    const section = row.path.split(/[.[]/)[0] ?? row.path;
    sections.set(section, [...(sections.get(section) ?? []), row]);
  }
  const tables = [...sections].map(([section, sectionRows]) => {
    const lines = sectionRows.map((row) => {
      const value = row.default === undefined ? (row.required ? "**required**" : "—") : cell(code(row.default));
      return `| ${code(row.path)} | ${cell(row.type)} | ${value} | ${cell(row.bounds)} |`;
    });
    return `## \`${section}\`\n\n| key | type | default | bounds |\n| --- | --- | --- | --- |\n${lines.join("\n")}\n`;
  });
  return `# Configuration reference

Generated from the guard's schema (\`src/config/schema.ts\` and each stage's \`config.ts\`) by
\`make docs\`; a test fails when this file differs, so every default here is the default the guard
applies. Each key's meaning is in the comment above it in the stage's \`config.ts\` and in the docs
of its capability; \`config/default.yaml\` is the worked example, and \`config/schema.json\` is the
same schema for editors (e.g. \`# yaml-language-server: $schema=config/schema.json\`).

Every key may be left out: a section's keys take their defaults, and an empty file is a working
config (pure pass-through). **required** marks the keys of a list item or of an optional block that
has no default once the item or block is written. Checks that span keys (e.g.
\`admission.limit.min\` ≤ \`admission.limit.max\`, a route's contract message existing) run at
load and are not in this table; \`inference-guard check --config FILE\` runs them all.

${tables.join("\n")}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(CONFIG_REFERENCE_DOC, renderConfigReference());
  writeFileSync(CONFIG_JSON_SCHEMA, `${JSON.stringify(configJsonSchema(), null, 2)}\n`);
}
