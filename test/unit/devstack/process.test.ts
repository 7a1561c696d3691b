import t from "tap";
import { childEnv } from "../../../src/devstack/process.js";

const TAP_IMPORT = '"--import=file:///repo/node_modules/@tapjs/processinfo/dist/esm/import.mjs"';

t.test("tap's preload is not passed on to the stack's processes", async (t) => {
  t.same(
    childEnv({ PATH: "/bin", NODE_OPTIONS: TAP_IMPORT }),
    { PATH: "/bin" },
    "NODE_OPTIONS with only tap's hook goes",
  );
  t.same(
    childEnv({ NODE_OPTIONS: `--max-old-space-size=512 ${TAP_IMPORT} --enable-source-maps` }),
    { NODE_OPTIONS: "--max-old-space-size=512 --enable-source-maps" },
    "the user's own options stay, in order",
  );
  t.same(
    childEnv({ NODE_OPTIONS: "--import=file:///x/node_modules/@tapjs/processinfo/dist/esm/import.mjs" }),
    {},
    "unquoted too",
  );
});

t.test("an environment without tap's preload is passed on as it is", async (t) => {
  const env = { NODE_OPTIONS: "--max-old-space-size=512", PATH: "/bin" };
  t.equal(childEnv(env), env);
  const bare = { PATH: "/bin" };
  t.equal(childEnv(bare), bare);
});
