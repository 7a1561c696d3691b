import { readFile } from "node:fs/promises";
import t from "tap";
import { parse } from "yaml";
import {
  ISTIO_ENVOY_FILTER_FILE,
  istioSidecarOnLoopback,
  KUBERNETES_ENVOY,
  kubernetesEnvoyOnLoopback,
  renderDeployConfigs,
} from "../../../src/devstack/deploy-configs.js";
import { loadEnvoyTemplate, renderEnvoyConfig } from "../../../src/devstack/envoy-config.js";

// biome-ignore lint/suspicious/noExplicitAny: walking known paths of Envoy YAML; a wrong path fails its assertion
type Doc = Record<string, any>;

const placement = {
  listenPort: 10000,
  adminPort: 10001,
  lightPort: 8001,
  heavyPort: 8002,
  guardAddress: "unix:/tmp/g.sock",
};

async function committed(): Promise<Map<string, string>> {
  const rendered = await renderDeployConfigs();
  return new Map(
    await Promise.all([...rendered.keys()].map(async (file) => [file, await readFile(file, "utf8")] as const)),
  );
}

t.test("the committed deploy configs are what `make deploy-configs` renders from envoy/envoy.yaml", async (t) => {
  const files = await committed();
  for (const [file, text] of await renderDeployConfigs())
    t.equal(files.get(file), text, `${file} is generated: edit envoy/envoy.yaml and run make deploy-configs`);
});

const hcmOf = (config: Doc): Doc => config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
const clusterOf = (config: Doc, name: string): Doc =>
  (config.static_resources.clusters as Doc[]).find((cluster) => cluster.name === name) ?? {};

t.test("the Kubernetes ConfigMap holds envoy/envoy.yaml with the pod's addresses", async (t) => {
  const [configMap] = [...(await committed()).values()];
  const embedded = (parse(configMap ?? "") as Doc).data["envoy.yaml"] as string;
  t.equal(embedded.trimEnd(), renderEnvoyConfig(await loadEnvoyTemplate(), KUBERNETES_ENVOY).trimEnd());
  const config = parse(embedded) as Doc;
  t.same(config.static_resources.listeners[0].address, { socket_address: { address: "0.0.0.0", port_value: 8080 } });
  t.equal(clusterOf(config, "model_light").type, "STRICT_DNS");
  t.same(clusterOf(config, "inference_guard").circuit_breakers.thresholds[0], {
    max_requests: 10000,
    max_pending_requests: 10000,
    max_connections: 128,
  });

  const onLoopback = parse(kubernetesEnvoyOnLoopback(configMap ?? "", placement)) as Doc;
  t.same(onLoopback.admin.address, { socket_address: { address: "127.0.0.1", port_value: 10001 } });
  t.same(onLoopback.static_resources.listeners[0].address, {
    socket_address: { address: "127.0.0.1", port_value: 10000 },
  });
  const address = (name: string) =>
    clusterOf(onLoopback, name).load_assignment.endpoints[0].lb_endpoints[0].endpoint.address;
  t.same(address("model_light"), { socket_address: { address: "127.0.0.1", port_value: 8001 } });
  t.same(address("model_heavy"), { socket_address: { address: "127.0.0.1", port_value: 8002 } });
  t.same(address("inference_guard"), { pipe: { path: "/tmp/g.sock" } });
  // Nothing but the addresses moved.
  const strip = (doc: Doc): Doc => {
    const copy = structuredClone(doc);
    delete copy.admin.address;
    delete copy.static_resources.listeners[0].address;
    for (const cluster of copy.static_resources.clusters as Doc[])
      delete cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address;
    return copy;
  };
  t.same(strip(onLoopback), strip(config));
});

t.test(
  "the Istio EnvoyFilter carries envoy/envoy.yaml's filter, header removal, guard cluster and runtime flag",
  async (t) => {
    const [, envoyFilter] = [...(await committed()).values()];
    const local = parse(renderEnvoyConfig(await loadEnvoyTemplate(), KUBERNETES_ENVOY)) as Doc;
    const sidecar = parse(istioSidecarOnLoopback(envoyFilter ?? "", placement)) as Doc;
    const hcm = hcmOf(sidecar);
    t.same(
      hcm.http_filters.map((filter: Doc) => filter.name),
      ["envoy.filters.http.ext_proc", "envoy.filters.http.router"],
      "the guard's filter just before the router",
    );
    t.same(hcm.http_filters[0], hcmOf(local).http_filters[0]);
    t.same(hcm.early_header_mutation_extensions, hcmOf(local).early_header_mutation_extensions);
    const guard = clusterOf(sidecar, "inference_guard");
    t.same(guard.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address, { pipe: { path: "/tmp/g.sock" } });
    const { load_assignment: _sidecarAddress, ...guardSettings } = guard;
    const { load_assignment: _localAddress, ...localSettings } = clusterOf(local, "inference_guard");
    t.same(guardSettings, localSettings);
    t.same(
      (sidecar.layered_runtime.layers as Doc[]).map((layer) => layer.name),
      ["global_config", "admin", "inference-guard"],
      "the patch's runtime layer comes after Istio's",
    );
    t.same(sidecar.layered_runtime.layers[2].static_layer, local.layered_runtime.layers[0].static_layer);
  },
);

t.test("the README's blocks for attaching to an existing Envoy are envoy/envoy.yaml's", async (t) => {
  const readme = await readFile(new URL("../../../../README.md", import.meta.url), "utf8");
  const blocks = [...readme.matchAll(/^```yaml envoy\n([\s\S]*?)^```/gm)].map((match) => parse(match[1] ?? "") as Doc);
  const patches = (parse((await renderDeployConfigs()).get(ISTIO_ENVOY_FILTER_FILE) ?? "") as Doc).spec
    .configPatches as Doc[];
  const value = (applyTo: string): Doc => patches.find((patch) => patch.applyTo === applyTo)?.patch.value ?? {};
  t.same(blocks, [
    { early_header_mutation_extensions: value("NETWORK_FILTER").typed_config.early_header_mutation_extensions },
    { http_filters: [value("HTTP_FILTER")] },
    { clusters: [value("CLUSTER")] },
    { layered_runtime: value("BOOTSTRAP").layered_runtime },
  ]);
});
