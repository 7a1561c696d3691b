import { readFile } from "node:fs/promises";
import { join } from "node:path";
import t from "tap";
import { PROJECT_ROOT } from "../../../src/devstack/envoy.js";
import { GUARD_NODE_FLAGS } from "../../../src/devstack/stack.js";

// The guard's memory bound depends on these V8 flags; the dev stack, the container and the
// installed command must not drift apart.
t.test("the dev stack, the Dockerfile and the bin/ shebang run Node with the same flags", async (t) => {
  const dockerfile = await readFile(join(PROJECT_ROOT, "Dockerfile"), "utf8");
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1];
  if (entrypoint === undefined) return t.fail("the Dockerfile has an exec-form ENTRYPOINT");
  const dockerFlags = (JSON.parse(entrypoint) as string[]).filter((arg) => arg.startsWith("--"));
  t.same(dockerFlags, GUARD_NODE_FLAGS, "Dockerfile ENTRYPOINT");

  const bin = await readFile(join(PROJECT_ROOT, "bin", "inference-guard.js"), "utf8");
  const shebang = bin.split("\n", 1)[0] ?? "";
  t.same(
    shebang.split(" ").filter((arg) => arg.startsWith("--")),
    GUARD_NODE_FLAGS,
    "bin/ shebang",
  );
  t.ok(GUARD_NODE_FLAGS.length > 0);
});
