import { readFile } from "node:fs/promises";
import t from "tap";
import { parse } from "yaml";
import { parseConfig } from "../../../src/config/load.js";
import {
  CONFIG_JSON_SCHEMA,
  CONFIG_REFERENCE_DOC,
  configJsonSchema,
  referenceRows,
  renderConfigReference,
} from "../../../src/config/reference.js";
import { DEFAULT_GUARD_CONFIG } from "../../../src/devstack/stack.js";

t.test("docs/config.md and config/schema.json are what `make docs` renders from the schema", async (t) => {
  t.equal(await readFile(CONFIG_REFERENCE_DOC, "utf8"), renderConfigReference(), "docs/config.md: run make docs");
  t.equal(
    await readFile(CONFIG_JSON_SCHEMA, "utf8"),
    `${JSON.stringify(configJsonSchema(), null, 2)}\n`,
    "config/schema.json: run make docs",
  );
});

function at(value: unknown, path: string): unknown {
  return path.split(".").reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], value);
}

t.test("every documented section default is the value an empty config loads with", async (t) => {
  const loaded = parseConfig("");
  if (!loaded.ok) return t.fail("an empty config is rejected");
  const sectionRows = referenceRows().filter((row) => !row.path.startsWith("routes") && row.default !== undefined);
  t.ok(sectionRows.length > 80, `${sectionRows.length} section keys with defaults`);
  for (const row of sectionRows) t.same(at(loaded.config, row.path), JSON.parse(row.default ?? "null"), row.path);
});

t.test("config/default.yaml sets no section key to its default: only what the demo changes", async (t) => {
  const demo = parse(await readFile(DEFAULT_GUARD_CONFIG, "utf8")) as Record<string, unknown>;
  const defaults = new Map(referenceRows().map((row) => [row.path, row.default]));
  const redundant: string[] = [];
  const visit = (value: unknown, path: string): void => {
    const documented = defaults.get(path);
    if (documented !== undefined && JSON.stringify(value) === documented) redundant.push(path);
    else if (value !== null && typeof value === "object" && !Array.isArray(value))
      for (const [key, child] of Object.entries(value)) visit(child, `${path}.${key}`);
  };
  for (const [section, value] of Object.entries(demo)) if (section !== "routes") visit(value, section);
  t.same(redundant, [], "keys restating their default");
});

t.test("the README's configuration table states the schema's defaults", async (t) => {
  const readme = await readFile(new URL("../../../../README.md", import.meta.url), "utf8");
  const loaded = parseConfig("");
  if (!loaded.ok) return t.fail("an empty config is rejected");
  let compared = 0;
  // Rows whose key is one path and whose default is one value (not "—", "off", "see docs", …).
  for (const [, key = "", cell = ""] of readme.matchAll(/^\| `([a-zA-Z.]+)` \| `([^`|]+)` \|/gm)) {
    t.same(parse(cell), at(loaded.config, key), `README: ${key}`);
    compared += 1;
  }
  t.ok(compared >= 9, `${compared} README defaults compared`);
});
