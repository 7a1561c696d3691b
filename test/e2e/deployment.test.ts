// The deployment files, checked as far as this machine allows (no cluster, no container engine):
// Kubernetes schemas (kubernetes-validate, strict), the embedded guard config and contracts through
// the guard's own loader and compiler, the embedded Envoy config and the Istio patch through the
// real Envoy's --mode validate, and the pod wiring (socket path, probes, mounts) against each other.
import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { parse, stringify } from "yaml";
import { parseConfig } from "../../src/config/load.js";
import { compileContracts } from "../../src/contracts/compile.js";
import { ISTIO_ENVOY_FILTER_FILE, istioSidecarOnLoopback } from "../../src/devstack/deploy-configs.js";
import { envoyBinary, PROJECT_ROOT } from "../../src/devstack/envoy.js";
import { freePort } from "../../src/devstack/ports.js";
import { httpOk, spawnManaged, waitUntil } from "../../src/devstack/process.js";
import { type Doc, docs, find, K8S, manifests } from "../helpers/kubernetes.js";

async function envoyValidates(config: string, dir: string, name: string): Promise<{ ok: boolean; output: string }> {
  const file = join(dir, `${name}.yaml`);
  await writeFile(file, config);
  const result = spawnSync(envoyBinary(), ["--mode", "validate", "-c", file, "--log-level", "error"], {
    encoding: "utf8",
    timeout: 60_000,
  });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

t.test("manifests pass strict Kubernetes schema validation", async (t) => {
  const install = spawnSync("bash", [join(PROJECT_ROOT, "scripts", "install-kubernetes-validate.sh")], {
    stdio: ["ignore", "inherit", "inherit"],
    timeout: 600_000,
  });
  t.equal(install.status, 0, "kubernetes-validate installed");
  const kustomization = parse(await readFile(join(K8S, "kustomization.yaml"), "utf8")) as { resources: string[] };
  const files = kustomization.resources.map((file) => join(K8S, file));
  const result = spawnSync("python3", ["-m", "kubernetes_validate", "--strict", "--quiet", ...files], {
    encoding: "utf8",
    env: { ...process.env, PYTHONPATH: join(PROJECT_ROOT, ".tools", "kubernetes-validate") },
    timeout: 120_000,
  });
  t.equal(result.status, 0, `${result.stdout}${result.stderr}`.trim() || "all resources valid");
  t.same(
    (await readdir(K8S)).filter((file) => file.endsWith(".yaml") && file !== "kustomization.yaml").sort(),
    [...kustomization.resources].sort(),
    "kustomization lists every manifest",
  );
});

t.test("the guard config in the ConfigMap loads, and its contracts compile", async (t) => {
  const all = await manifests();
  const text = find(all, "ConfigMap", "inference-guard-config").data["guard.yaml"] as string;
  const loaded = parseConfig(text);
  if (!loaded.ok) return t.fail(JSON.stringify(loaded.errors));
  t.equal(loaded.config.listen.grpc, "unix:/run/inference-guard/guard.sock");
  t.equal(loaded.config.listen.admin, "0.0.0.0:9464");
  const contracts = find(all, "ConfigMap", "inference-guard-contracts").data as Record<string, string>;
  for (const [name, source] of Object.entries(contracts)) {
    t.equal(
      source,
      await readFile(join(PROJECT_ROOT, "proto", "contracts", name), "utf8"),
      `${name} is the repository's contract`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), "guard-k8s-contracts-"));
  for (const [name, source] of Object.entries(contracts)) await writeFile(join(dir, name), source);
  const compiled = await compileContracts({ ...loaded.config.contracts, protoPaths: [dir] });
  if (!compiled.ok) return t.fail(JSON.stringify(compiled.errors));
  for (const route of loaded.config.routes) {
    if (route.contract !== undefined)
      t.ok(
        compiled.contracts.messages.has(route.contract.message),
        `${route.name}: ${route.contract.message} is in the ConfigMap`,
      );
  }
});

t.test("the Envoy config in the ConfigMap and the Istio patch pass envoy --mode validate", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "guard-envoy-validate-"));
  const all = await manifests();
  const envoyYaml = find(all, "ConfigMap", "inference-guard-envoy").data["envoy.yaml"] as string;
  const pod = await envoyValidates(envoyYaml, dir, "pod");
  t.ok(pod.ok, pod.output.slice(-1500) || "pod Envoy config valid");
  const envoy = parse(envoyYaml) as Doc;
  const guardCluster = (envoy.static_resources.clusters as Doc[]).find((cluster) => cluster.name === "inference_guard");
  t.equal(
    guardCluster?.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe.path,
    "/run/inference-guard/guard.sock",
  );

  const hcm = envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config as Doc;
  const stripped = (mutations: Doc[]) => mutations.map((mutation) => mutation.remove);
  t.same(
    stripped(hcm.early_header_mutation_extensions[0].typed_config.mutations),
    ["x-guard-tier", "x-guard-pool", "x-envoy-upstream-rq-timeout-ms", "x-guard-priority"],
    "a client's pool, rollout pool, upstream timeout and priority class are removed before any filter",
  );

  // The EnvoyFilter's patches applied by hand to a minimal inbound listener, as istiod would.
  const filter = (await docs(join(PROJECT_ROOT, "deploy", "istio", "envoyfilter.yaml")))[0] as Doc;
  t.equal(filter.kind, "EnvoyFilter");
  const patches = filter.spec.configPatches as Doc[];
  const httpFilter = patches.find((patch) => patch.applyTo === "HTTP_FILTER");
  t.equal(httpFilter?.patch.operation, "INSERT_BEFORE");
  t.equal(
    httpFilter?.match.listener.filterChain.filter.subFilter.name,
    "envoy.filters.http.router",
    "inserted before the router",
  );
  // The MERGE into the connection manager: istiod merges its typed_config fields into the HCM's.
  const hcmMerge = patches.find((patch) => patch.applyTo === "NETWORK_FILTER");
  t.equal(hcmMerge?.patch.operation, "MERGE");
  t.equal(hcmMerge?.match.listener.filterChain.filter.name, "envoy.filters.network.http_connection_manager");
  t.same(stripped(hcmMerge?.patch.value.typed_config.early_header_mutation_extensions[0].typed_config.mutations), [
    "x-guard-tier",
    "x-guard-pool",
    "x-envoy-upstream-rq-timeout-ms",
    "x-guard-priority",
  ]);
  // The BOOTSTRAP MERGE appends its runtime layer to Istio's own (a static layer, then the admin layer).
  const runtimePatch = patches.find((patch) => patch.applyTo === "BOOTSTRAP");
  t.equal(runtimePatch?.patch.operation, "MERGE");
  t.same(
    ((runtimePatch?.patch.value.layered_runtime.layers ?? []) as Doc[]).map((layer) => layer.static_layer),
    [{ "envoy.reloadable_features.ext_proc_graceful_grpc_close": true }],
    "graceful ext_proc close set as a real setting, not a comment",
  );
  // The patches applied to a minimal inbound sidecar, as istiod would.
  const bootstrap = istioSidecarOnLoopback(await readFile(ISTIO_ENVOY_FILTER_FILE, "utf8"), {
    listenPort: 15006,
    adminPort: 15000,
    lightPort: 8000,
    heavyPort: 8000,
    guardAddress: "127.0.0.1:50051",
  });
  const istio = await envoyValidates(bootstrap, dir, "istio");
  t.ok(istio.ok, istio.output.slice(-1500) || "Istio patch valid");
});

t.test("the Istio runtime patch takes effect: Envoy runs with graceful ext_proc close", async (t) => {
  const filter = (await docs(join(PROJECT_ROOT, "deploy", "istio", "envoyfilter.yaml")))[0] as Doc;
  const patch = (filter.spec.configPatches as Doc[]).find((candidate) => candidate.applyTo === "BOOTSTRAP");
  const adminPort = await freePort();
  const dir = await mkdtemp(join(tmpdir(), "guard-istio-runtime-"));
  const file = join(dir, "bootstrap.yaml");
  // Istio's bootstrap runtime (a static layer, then the admin layer) with the patch's layer merged in.
  await writeFile(
    file,
    stringify({
      admin: { address: { socket_address: { address: "127.0.0.1", port_value: adminPort } } },
      layered_runtime: {
        layers: [
          { name: "global_config", static_layer: {} },
          { name: "admin", admin_layer: {} },
          ...((patch?.patch.value.layered_runtime.layers ?? []) as Doc[]),
        ],
      },
    }),
  );
  const envoy = spawnManaged("envoy", envoyBinary(), [
    "-c",
    file,
    "--log-level",
    "error",
    "--base-id",
    String(adminPort),
  ]);
  t.teardown(() => envoy.stop());
  const admin = `http://127.0.0.1:${adminPort}`;
  await waitUntil("envoy", () => httpOk(`${admin}/ready`), 20_000, envoy);
  const runtime = (await (await fetch(`${admin}/runtime`)).json()) as Doc;
  t.equal(runtime.entries["envoy.reloadable_features.ext_proc_graceful_grpc_close"]?.final_value, "true");
});

t.test("pod wiring: shared socket, probes on the admin port, resources and hardening", async (t) => {
  const all = await manifests();
  const deployment = find(all, "Deployment", "inference-guard");
  const spec = deployment.spec.template.spec as Doc;
  const containers = spec.containers as Doc[];
  const guard = containers.find((container) => container.name === "guard") as Doc;
  const envoy = containers.find((container) => container.name === "envoy") as Doc;
  const socketVolume = (spec.volumes as Doc[]).find((volume) => volume.name === "guard-socket");
  t.ok(socketVolume?.emptyDir, "the socket lives in an emptyDir");
  for (const container of [guard, envoy]) {
    const mount = (container.volumeMounts as Doc[]).find((volume) => volume.name === "guard-socket");
    t.equal(mount?.mountPath, "/run/inference-guard", `${String(container.name)} mounts the socket directory`);
    t.ok(
      container.resources.requests.cpu && container.resources.limits.memory,
      `${String(container.name)}: requests and limits`,
    );
    t.same(container.securityContext.capabilities, { drop: ["ALL"] });
    t.equal(container.securityContext.readOnlyRootFilesystem, true);
    t.equal(container.securityContext.allowPrivilegeEscalation, false);
  }
  t.equal(spec.securityContext.runAsNonRoot, true);
  t.equal(guard.readinessProbe.httpGet.path, "/readyz");
  t.equal(guard.livenessProbe.httpGet.path, "/healthz");
  t.equal(guard.readinessProbe.httpGet.port, "admin");
  t.equal((guard.ports as Doc[]).find((port) => port.name === "admin")?.containerPort, 9464);
  const configMaps = new Set(all.filter((doc) => doc.kind === "ConfigMap").map((doc) => doc.metadata.name as string));
  for (const volume of spec.volumes as Doc[]) {
    if (volume.configMap !== undefined)
      t.ok(configMaps.has(volume.configMap.name), `volume ${String(volume.name)}: ConfigMap exists`);
  }
  const guardConfig = parseConfig(find(all, "ConfigMap", "inference-guard-config").data["guard.yaml"] as string);
  if (!guardConfig.ok) return t.fail("guard config invalid");
  t.ok(
    guardConfig.config.drain.timeoutMs / 1000 < spec.terminationGracePeriodSeconds,
    "drain ends before the pod is killed",
  );
  const envoySleep = envoy.lifecycle.preStop.exec.command as string[];
  t.equal(envoySleep[0], "/bin/sleep");
  t.ok(
    guardConfig.config.drain.graceMs / 1000 > Number(envoySleep[1]),
    "the guard serves new streams for as long as Envoy takes requests after the pod starts terminating",
  );
  const contractsMount = (guard.volumeMounts as Doc[]).find((volume) => volume.name === "guard-contracts");
  t.same(
    guardConfig.config.contracts.protoPaths,
    [contractsMount?.mountPath],
    "contracts are read where they are mounted",
  );
});
