// Identity: the tenant and priority class of a request, from the sources the operator trusts, once
// per exchange and before any stage runs.
import pino from "pino";
import { Registry } from "prom-client";
import t from "tap";
import { configSchema } from "../../../../src/config/schema.js";
import { createCoreMetrics } from "../../../../src/metrics/registry.js";
import { stageConfigs } from "../../../../src/pipeline/build.js";
import { ANONYMOUS_TENANT, createIdentify, tenantOf } from "../../../../src/pipeline/identity/identify.js";
import { Pipeline } from "../../../../src/pipeline/pipeline.js";
import type { Exchange, RequestInfo } from "../../../../src/pipeline/types.js";
import { route } from "../../../helpers/frames.js";
import { registryValue } from "../../../helpers/registry-metrics.js";

function request(headers: Record<string, string> = {}, attributes?: Record<string, string>): RequestInfo {
  return {
    method: "POST",
    path: "/v1/chat/completions",
    authority: "model",
    headers: new Map(Object.entries(headers)),
    requestId: "r",
    endOfStream: true,
    ...(attributes === undefined ? {} : { attributes: new Map(Object.entries(attributes)) }),
  };
}

function identify(config: Record<string, unknown>) {
  const parsed = configSchema.parse(config);
  const registry = new Registry();
  const derive = createIdentify(stageConfigs(parsed).identity, registry);
  const metric = (name: string, labels: Record<string, string>) => registryValue(registry, name, labels);
  return { derive, metric };
}

const ROUTES = [
  { name: "chat" },
  { name: "batch", identity: { priority: "sheddable" } },
  { name: "internal", identity: { trustClientPriority: true } },
];

t.test("a client's class header is believed only on a route that trusts its clients", async (t) => {
  const { derive, metric } = identify({ routes: ROUTES });
  const claim = request({ "x-guard-priority": "critical" });
  t.equal(derive(claim, "chat").priority, "standard", "untrusted route: ignored");
  t.equal(derive(claim, "batch").priority, "sheddable", "untrusted route: its default class, not the claim");
  t.equal(derive(claim, "internal").priority, "critical", "trusted route: believed");
  t.equal(derive(request({ "x-guard-priority": " Sheddable " }), "internal").priority, "sheddable");
  t.equal(await metric("guard_identity_ignored_total", { route: "chat", reason: "untrusted_client_priority" }), 1);
  t.equal(await metric("guard_identity_ignored_total", { route: "batch", reason: "untrusted_client_priority" }), 1);
  t.equal(
    await metric("guard_identity_priority_total", { route: "internal", priority: "critical", source: "client_header" }),
    1,
  );
  t.equal(await metric("guard_identity_priority_total", { route: "chat", priority: "standard", source: "route" }), 1);
});

t.test("a class header naming no class falls back to the route's class, counted", async (t) => {
  const { derive, metric } = identify({ routes: ROUTES });
  t.equal(derive(request({ "x-guard-priority": "urgent!!" }), "internal").priority, "standard");
  t.equal(await metric("guard_identity_ignored_total", { route: "internal", reason: "unknown_priority" }), 1);
  t.equal(derive(request(), "internal").priority, "standard", "no header: the route's class, nothing ignored");
  t.equal(
    await metric("guard_identity_ignored_total", { route: "internal", reason: "untrusted_client_priority" }),
    undefined,
  );
});

t.test("verified attributes and Envoy-set headers map to a class; the first matching rule wins", async (t) => {
  const { derive, metric } = identify({
    identity: {
      priority: {
        header: "x-class",
        rules: [
          { attribute: "source.principal", exact: "spiffe://cluster.local/ns/pay/sa/checkout", priority: "critical" },
          { attribute: "source.principal", prefix: "spiffe://cluster.local/ns/batch/", priority: "sheddable" },
          { header: "x-jwt-tier", exact: "gold", priority: "critical" },
        ],
      },
    },
    routes: ROUTES,
  });
  const checkout = { "source.principal": "spiffe://cluster.local/ns/pay/sa/checkout" };
  t.equal(derive(request({}, checkout), "batch").priority, "critical", "a rule beats the route's default");
  t.equal(
    derive(request({ "x-class": "sheddable" }, checkout), "internal").priority,
    "critical",
    "a rule beats a trusted client's own header",
  );
  const nightly = { "source.principal": "spiffe://cluster.local/ns/batch/sa/nightly" };
  t.equal(derive(request({}, nightly), "chat").priority, "sheddable", "prefix");
  t.equal(
    derive(request({}, { "source.principal": "spiffe://cluster.local/ns/pay/sa/other" }), "chat").priority,
    "standard",
  );
  t.equal(derive(request({ "x-jwt-tier": "gold" }), "chat").priority, "critical", "a header only Envoy sets");
  t.equal(derive(request({ "x-jwt-tier": "silver" }), "chat").priority, "standard");
  t.equal(derive(request({ "x-class": "critical" }), "internal").priority, "critical", "the configured class header");
  t.equal(derive(request({ "x-guard-priority": "critical" }), "internal").priority, "standard", "not the default one");
  t.equal(await metric("guard_identity_priority_total", { route: "chat", priority: "critical", source: "rule" }), 1);
});

t.test("the tenant is a hash of its source, never the credential; none → anonymous", async (t) => {
  const source = { header: "authorization" };
  const secret = request({ authorization: "Bearer sk-secret-123", "x-tenant": "acme" });
  const tenant = tenantOf(secret, source);
  t.notMatch(tenant, /sk-secret/);
  t.equal(tenant, tenantOf(request({ authorization: "Bearer sk-secret-123" }), source), "stable");
  t.not(tenant, tenantOf(request({ authorization: "Bearer sk-other" }), source));
  t.not(tenantOf(secret, { header: "x-tenant" }), tenant, "the configured header decides");
  t.equal(tenantOf(request(), source), ANONYMOUS_TENANT);
  t.equal(tenantOf(request({ authorization: "" }), source), ANONYMOUS_TENANT);
  t.equal(tenantOf(secret, { header: "" }), ANONYMOUS_TENANT, "no source configured: one shared tenant");

  const principal = { "source.principal": "spiffe://cluster.local/ns/a/sa/b" };
  const byAttribute = { header: "authorization", attribute: "source.principal" };
  const fromPeer = tenantOf(request({ authorization: "Bearer sk-secret-123" }, principal), byAttribute);
  t.not(fromPeer, tenant, "a verified attribute wins over the header");
  t.notMatch(fromPeer, /spiffe/);
  t.equal(fromPeer, tenantOf(request({ authorization: "Bearer other" }, principal), byAttribute));
  t.equal(tenantOf(secret, byAttribute), tenant, "attribute absent: the header");
});

t.test("derived once, before any stage starts: every stage sees the same tenant and class", async (t) => {
  const config = configSchema.parse({
    identity: { priority: { rules: [{ attribute: "source.address", prefix: "127.0.0.2:", priority: "critical" }] } },
    routes: [{ name: "chat" }],
  });
  const metrics = createCoreMetrics("test");
  const seen: { stage: string; tenant: string; priority: string }[] = [];
  const spy = (name: string) => ({
    name,
    start(exchange: Exchange) {
      seen.push({ stage: name, tenant: exchange.tenant, priority: exchange.priority });
      return undefined;
    },
  });
  const pipeline = new Pipeline(
    [route("chat")],
    [spy("cache"), spy("admission")],
    { metrics, log: pino({ level: "silent" }), now: () => 0 },
    createIdentify(stageConfigs(config).identity, metrics.registry),
  );
  const run = pipeline.open(
    request({ authorization: "Bearer k", "x-guard-priority": "sheddable" }, { "source.address": "127.0.0.2:40000" }),
    () => undefined,
  );
  const tenant = tenantOf(request({ authorization: "Bearer k" }), { header: "authorization" });
  t.same(seen, [
    { stage: "cache", tenant, priority: "critical" },
    { stage: "admission", tenant, priority: "critical" },
  ]);
  t.equal(run?.exchange.tenant, tenant);
});
