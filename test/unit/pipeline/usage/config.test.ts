import t from "tap";
import { parseConfig } from "../../../../src/config/load.js";
import { configSchema } from "../../../../src/config/schema.js";

t.test("defaults: on for every route, no body buffering, x-model-version, 20 versions", async (t) => {
  const config = configSchema.parse({ routes: [{ name: "chat", match: {} }] });
  t.same(config.usage, { maxModelVersions: 20 });
  t.same(config.routes[0]?.usage, {
    enabled: true,
    countBodies: false,
    maxBodyBytes: 1024 * 1024,
    modelVersionHeader: "x-model-version",
  });
});

t.test("errors name their path", async (t) => {
  const result = parseConfig(`
usage: { maxModelVersions: 0, versions: 3 }
routes:
  - name: chat
    usage: { enabled: "yes", countBody: true, maxBodyBytes: 0, modelVersionHeader: X-Version }
`);
  t.notOk(result.ok);
  t.same(result.ok ? [] : result.errors.map((issue) => issue.path).sort(), [
    "routes[0].usage.countBody",
    "routes[0].usage.enabled",
    "routes[0].usage.maxBodyBytes",
    "routes[0].usage.modelVersionHeader",
    "usage.maxModelVersions",
    "usage.versions",
  ]);
});

t.test("a usage section with every route's usage off has no effect: a warning", async (t) => {
  const off = parseConfig("usage: { maxModelVersions: 5 }\nroutes: [{ name: chat, usage: { enabled: false } }]\n");
  t.ok(off.ok);
  t.same(off.warnings, [{ path: "usage", message: "no route enables usage: this section has no effect" }]);
  t.same(parseConfig("usage: { maxModelVersions: 5 }\nroutes: [{ name: chat }]\n").warnings, []);
});
