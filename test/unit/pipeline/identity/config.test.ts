import t from "tap";
import { parseConfig } from "../../../../src/config/load.js";
import { configSchema } from "../../../../src/config/schema.js";

t.test("an empty config: the tenant is the hashed authorization, no client is trusted with its class", async (t) => {
  const config = configSchema.parse({ routes: [{ name: "chat" }] });
  t.same(config.identity, { tenant: { header: "authorization" }, priority: { header: "x-guard-priority", rules: [] } });
  t.same(config.routes[0]?.identity, { priority: "standard", trustClientPriority: false });
});

t.test("a rule names one source and one comparison", async (t) => {
  const result = parseConfig(`
identity:
  priority:
    rules:
      - { attribute: source.principal, header: x-tier, exact: a, priority: critical }
      - { attribute: source.principal, priority: critical }
      - { attribute: Source, exact: a, priority: critical }
      - { header: x-tier, prefix: g, priority: urgent }
routes: [{ name: chat, identity: { priority: low } }]
`);
  t.equal(result.ok, false);
  if (result.ok) return;
  t.match(result.errors, [
    { path: "identity.priority.rules[0]", message: "set exactly one of attribute and header" },
    { path: "identity.priority.rules[1]", message: "set exactly one of exact and prefix" },
    { path: "identity.priority.rules[2].attribute", message: /Envoy attribute path/ },
    { path: "identity.priority.rules[3].priority" },
    { path: "routes[0].identity.priority" },
  ]);
});

t.test("the keys identity replaced are errors that name where their setting went", async (t) => {
  const result = parseConfig(`
admission: { priorityHeader: x-prio, tenantHeader: x-tenant }
routes: [{ name: chat, cache: { enabled: true, tenantHeader: x-api-key }, admission: { enabled: true } }]
`);
  t.equal(result.ok, false);
  if (result.ok) return;
  t.match(result.errors, [
    { path: "admission.priorityHeader", message: /^moved: set identity\.priority\.header / },
    { path: "admission.tenantHeader", message: "moved: set identity.tenant.header instead" },
    { path: "routes[0].cache.tenantHeader", message: /^moved: set identity\.tenant\.header / },
  ]);
});
