import t from "tap";
import { formatPath, parseConfig } from "../../../src/config/load.js";

t.test("an empty document is a complete config with defaults", async (t) => {
  const result = parseConfig("");
  t.ok(result.ok);
  if (!result.ok) return;
  t.equal(result.config.listen.grpc, "127.0.0.1:50051");
  t.equal(result.config.listen.admin, "127.0.0.1:9464");
  t.equal(result.config.drain.timeoutMs, 10_000);
  t.same(result.config.routes, []);
  t.ok(Object.isFrozen(result.config.listen), "config is frozen");
});

t.test("every problem is reported with its path", async (t) => {
  const result = parseConfig(`
listen: { grpc: "0.0.0.0:50051", admin: "nonsense" }
drain: { timeoutMs: -1 }
routes:
  - name: chat
    match: { pathPrefix: /v1/chat, methods: [post], colour: blue }
  - name: Chat!
  - name: chat
bogus: true
`);
  t.notOk(result.ok);
  if (result.ok) return;
  const byPath = new Map(result.errors.map((issue) => [issue.path, issue.message]));
  t.match(byPath.get("listen.grpc"), /not a loopback address/);
  t.match(byPath.get("listen.admin"), /host:port/);
  t.ok(byPath.has("drain.timeoutMs"));
  t.match(byPath.get("routes[0].match.methods[0]"), /upper-case/);
  t.equal(byPath.get("routes[0].match.colour"), "unknown key");
  t.match(byPath.get("routes[1].name"), /a-z/);
  t.match(byPath.get("routes[2].name"), /duplicate route name "chat" \(also routes\[0\]\)/);
  t.same(
    result.warnings.map((issue) => issue.path),
    ["bogus"],
    "an unknown top-level section is a warning, not an error",
  );
});

t.test("a public bind is allowed only when asked for", async (t) => {
  t.notOk(parseConfig("listen: { grpc: '0.0.0.0:50051' }").ok);
  t.ok(parseConfig("listen: { grpc: '0.0.0.0:50051', allowPublicBind: true }").ok);
  t.ok(parseConfig("listen: { grpc: 'unix:/run/guard.sock', admin: '[::1]:9464' }").ok);
});

t.test("a listen port past 65535 is a config error, not a crash at startup", async (t) => {
  for (const address of ["127.0.0.1:99999", "[::1]:65536"]) {
    const result = parseConfig(`listen: { admin: "${address}" }`);
    t.same(result.ok ? [] : result.errors, [{ path: "listen.admin", message: "port out of range (0-65535)" }], address);
  }
  t.ok(parseConfig("listen: { admin: '127.0.0.1:65535' }").ok);
});

t.test("YAML syntax errors name the line", async (t) => {
  const result = parseConfig("routes:\n  - name: a\n   bad: [\n");
  t.notOk(result.ok);
  if (result.ok) return;
  t.match(result.errors[0]?.message, /line \d+/);
});

t.test("duplicate YAML keys are errors, not silent overrides", async (t) => {
  t.notOk(parseConfig("drain: { timeoutMs: 1 }\ndrain: { timeoutMs: 2 }\n").ok);
});

t.test("paths are formatted with dots and indices", async (t) => {
  t.equal(formatPath(["routes", 2, "contract"]), "routes[2].contract");
  t.equal(formatPath([]), "");
});
