import { createRequire } from "node:module";
import { sep } from "node:path";
import t from "tap";
import { harness } from "./fakes.js";

// A guard without Redis never loads ioredis (startup time and memory; ioredis 6.0 also slowed every
// string method in the process, see redis-client-strings.test.ts).
const require = createRequire(import.meta.url);
const ioredisLoaded = (): boolean =>
  Object.keys(require.cache).some((path) => path.includes(`${sep}node_modules${sep}ioredis${sep}`));

t.test("ioredis is loaded only once a route shares entries through Redis", async (t) => {
  const local = harness({ routes: [{ name: "chat", cache: { enabled: true } }] });
  t.teardown(() => local.stage.close?.());
  t.notOk(ioredisLoaded(), "an in-process cache alone does not load it");

  // Nothing listens on port 1: the tier counts the failed connection and the stage keeps working.
  const shared = harness({
    cache: { redis: { url: "redis://127.0.0.1:1" } },
    routes: [{ name: "chat", cache: { enabled: true } }],
  });
  t.teardown(() => shared.stage.close?.());
  t.ok(ioredisLoaded(), "a Redis URL loads it");
});
