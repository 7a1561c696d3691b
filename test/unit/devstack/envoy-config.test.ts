import t from "tap";
import { parse } from "yaml";
import { type EnvoyConfigValues, loadEnvoyTemplate, renderEnvoyConfig } from "../../../src/devstack/envoy-config.js";

const base: EnvoyConfigValues = {
  listenPort: 10000,
  adminPort: 10001,
  lightPort: 8001,
  heavyPort: 8002,
  guardAddress: "127.0.0.1:50051",
  failureModeAllow: false,
  messageTimeoutMs: 1500,
  bufferLimitBytes: 1048576,
  routeIdleTimeoutMs: 30_000,
  variants: new Set(["ext_proc"]),
};

interface Rendered {
  static_resources: {
    listeners: {
      filter_chains: {
        filters: { typed_config: { http_filters: { name: string; typed_config: Record<string, unknown> }[] } }[];
      }[];
    }[];
    clusters: {
      name: string;
      type: string;
      load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: unknown } }[] }[] };
    }[];
  };
}

function httpFilters(config: Rendered): { name: string; typed_config: Record<string, unknown> }[] {
  return config.static_resources.listeners[0]?.filter_chains[0]?.filters[0]?.typed_config.http_filters ?? [];
}

t.test("the shipped envoy.yaml renders to valid YAML with the knobs filled in", async (t) => {
  const config = parse(renderEnvoyConfig(await loadEnvoyTemplate(), base)) as Rendered;
  const filters = httpFilters(config);
  t.same(
    filters.map((filter) => filter.name),
    ["envoy.filters.http.ext_proc", "envoy.filters.http.router"],
  );
  const extProc = filters[0]?.typed_config;
  t.equal(extProc?.failure_mode_allow, false);
  t.equal(extProc?.message_timeout, "1.5s");
  t.equal(extProc?.allow_mode_override, true);
  const guard = config.static_resources.clusters.find((cluster) => cluster.name === "inference_guard");
  t.same(guard?.load_assignment.endpoints[0]?.lb_endpoints[0]?.endpoint.address, {
    socket_address: { address: "127.0.0.1", port_value: 50051 },
  });
});

t.test("the Unix socket variant points the guard cluster at a pipe", async (t) => {
  const config = parse(
    renderEnvoyConfig(await loadEnvoyTemplate(), { ...base, guardAddress: "unix:/tmp/g.sock" }),
  ) as Rendered;
  const guard = config.static_resources.clusters.find((cluster) => cluster.name === "inference_guard");
  t.same(guard?.load_assignment.endpoints[0]?.lb_endpoints[0]?.endpoint.address, { pipe: { path: "/tmp/g.sock" } });
});

t.test("an IPv6 guard address reaches Envoy without the brackets of its [v6]:port form", async (t) => {
  const config = parse(
    renderEnvoyConfig(await loadEnvoyTemplate(), { ...base, guardAddress: "[::1]:50051" }),
  ) as Rendered;
  const guard = config.static_resources.clusters.find((cluster) => cluster.name === "inference_guard");
  t.same(guard?.load_assignment.endpoints[0]?.lb_endpoints[0]?.endpoint.address, {
    socket_address: { address: "::1", port_value: 50051 },
  });
});

t.test("variants: no guard (the benchmark floor) and Envoy's adaptive concurrency", async (t) => {
  const floor = parse(renderEnvoyConfig(await loadEnvoyTemplate(), { ...base, variants: new Set() })) as Rendered;
  t.same(
    httpFilters(floor).map((filter) => filter.name),
    ["envoy.filters.http.router"],
  );
  t.notOk(floor.static_resources.clusters.some((cluster) => cluster.name === "inference_guard"));
  const adaptive = parse(
    renderEnvoyConfig(await loadEnvoyTemplate(), { ...base, variants: new Set(["adaptive_concurrency"]) }),
  ) as Rendered;
  t.same(
    httpFilters(adaptive).map((filter) => filter.name),
    ["envoy.filters.http.adaptive_concurrency", "envoy.filters.http.router"],
  );
});

t.test("an unknown placeholder is an error, not a silent hole", async (t) => {
  t.throws(() => renderEnvoyConfig("port: {{NOPE}}", base), /unknown placeholder \{\{NOPE\}\}/);
});

t.test("model pools by name are resolved by Envoy (STRICT_DNS), by address are static", async (t) => {
  const config = parse(
    renderEnvoyConfig(await loadEnvoyTemplate(), { ...base, lightHost: "model-light.svc", heavyHost: "::1" }),
  ) as Rendered;
  const byName = new Map(config.static_resources.clusters.map((cluster) => [cluster.name, cluster]));
  t.equal(byName.get("model_light")?.type, "STRICT_DNS");
  t.same(byName.get("model_light")?.load_assignment.endpoints[0]?.lb_endpoints[0]?.endpoint.address, {
    socket_address: { address: "model-light.svc", port_value: 8001 },
  });
  t.equal(byName.get("model_heavy")?.type, "STATIC");
});

t.test("the template's note on itself is in no rendering", async (t) => {
  const template = await loadEnvoyTemplate();
  t.match(template, /make deploy-configs/);
  t.notMatch(renderEnvoyConfig(template, base), /make deploy-configs|# >>>|# <<</);
});
