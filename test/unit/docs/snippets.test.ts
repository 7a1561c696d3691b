// Every guard config a document shows is one the guard loads: each ```yaml block of the README and
// docs/ is parsed with the guard's own loader (decode → defaults → validate), with no error and no
// warning, but for a snippet that shows a section alone (no routes), which is a fragment: that its
// section has no effect without a route is the one warning it may give.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import t from "tap";
import { validateText } from "../../../src/config/load.js";

const ROOT = join(import.meta.dirname, "..", "..", "..", "..");

async function documents(): Promise<string[]> {
  const docs = (await readdir(join(ROOT, "docs"))).filter((name) => name.endsWith(".md")).map((name) => `docs/${name}`);
  return ["README.md", ...docs.sort()];
}

const YAML_BLOCK = /^```ya?ml\n([\s\S]*?)^```/gm;

t.test("every yaml snippet of the docs is a config the guard loads", async (t) => {
  let checked = 0;
  for (const document of await documents()) {
    const text = await readFile(join(ROOT, document), "utf8");
    for (const match of text.matchAll(YAML_BLOCK)) {
      const line = text.slice(0, match.index).split("\n").length;
      const snippet = match[1] ?? "";
      const { errors, warnings: all } = validateText(snippet);
      const fragment = !/^routes:/m.test(snippet);
      const warnings = all.filter((warning) => !(fragment && warning.message.endsWith("this section has no effect")));
      t.same({ errors, warnings }, { errors: [], warnings: [] }, `${document}:${line}`);
      checked += 1;
    }
  }
  t.ok(checked >= 8, `${checked} snippets checked`);
});
