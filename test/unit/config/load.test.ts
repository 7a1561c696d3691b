import t from "tap";
import { formatPath, parseConfig } from "../../../src/config/load.js";

t.test("an empty document is a complete config with defaults", async (t) => {
  const result = parseConfig("");
  t.ok(result.ok);
  if (!result.ok) return;
  t.equal(result.config.listen.grpc, "127.0.0.1:50051");
  t.equal(result.config.listen.admin, "127.0.0.1:9464");
  t.equal(result.config.drain.timeoutMs, 10_000);
  t.equal(result.config.drain.graceMs, 5_000);
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

t.test("drain: the grace must end before the timeout, which counts from SIGTERM", async (t) => {
  const errorsOf = (text: string) => {
    const result = parseConfig(text);
    return result.ok ? [] : result.errors;
  };
  t.same(errorsOf("drain: { graceMs: 0, timeoutMs: 1 }"), [], "no grace: the old behaviour");
  t.same(errorsOf("drain: { graceMs: 19999, timeoutMs: 20000 }"), []);
  t.match(errorsOf("drain: { timeoutMs: 5000 }"), [
    { path: "drain.graceMs", message: /^5000 must be shorter than drain\.timeoutMs \(5000\)/ },
  ]);
  t.match(errorsOf("drain: { graceMs: 30000, timeoutMs: 20000 }"), [{ path: "drain.graceMs" }]);
  t.same(
    errorsOf("drain: { timeoutMs: -1 }").map((issue) => issue.path),
    ["drain.timeoutMs"],
    "an invalid timeout has its own error, no comparison with the grace",
  );
  t.same(
    errorsOf("drain: { graceMs: 1.5 }").map((issue) => issue.path),
    ["drain.graceMs"],
    "one error for a grace that is not an integer",
  );
});

t.test("YAML syntax errors name the line", async (t) => {
  const result = parseConfig("routes:\n  - name: a\n   bad: [\n");
  t.notOk(result.ok);
  if (result.ok) return;
  t.match(result.errors[0]?.message, /line \d+/);
});

t.test("duplicate YAML keys are errors, not silent overrides", async (t) => {
  // Each key alone is valid, so the duplicate is what fails.
  t.ok(parseConfig("drain: { timeoutMs: 20000 }\n").ok);
  t.notOk(parseConfig("drain: { timeoutMs: 20000 }\ndrain: { timeoutMs: 30000 }\n").ok);
});

t.test("paths are formatted with dots and indices", async (t) => {
  t.equal(formatPath(["routes", 2, "contract"]), "routes[2].contract");
  t.equal(formatPath([]), "");
});
