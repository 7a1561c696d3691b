// Security defaults: loopback listeners, an ext_proc Unix socket with the configured file mode,
// dangerous listen values refused without the explicit opt-in, unknown keys refused below the top
// level (an unknown section is a warning), and metric labels fed by traffic bounded however many distinct values arrive.
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import t from "tap";
import { parseConfig } from "../../../src/config/load.js";
import { configSchema } from "../../../src/config/schema.js";
import { createCoreMetrics } from "../../../src/metrics/registry.js";
import { Pipeline } from "../../../src/pipeline/pipeline.js";
import { startGrpcServer } from "../../../src/server/grpc.js";
import { exchange, fullPipeline } from "../../helpers/full-pipeline.js";
import { registrySamples } from "../../helpers/registry-metrics.js";

t.test("defaults listen on loopback only", async (t) => {
  const result = parseConfig("");
  if (!result.ok) throw new Error("empty config");
  t.equal(result.config.listen.grpc, "127.0.0.1:50051");
  t.equal(result.config.listen.admin, "127.0.0.1:9464");
  t.equal(result.config.listen.allowPublicBind, false);
  t.equal(result.config.listen.socketMode, "660", "socket: owner and group (Envoy) only");
});

t.test("non-loopback and world-connectable listeners need allowPublicBind", async (t) => {
  const refused = [
    "listen: { grpc: '0.0.0.0:50051' }",
    "listen: { admin: '0.0.0.0:9464' }",
    "listen: { grpc: '[::]:50051' }",
    "listen: { grpc: '0:50051' }",
    "listen: { admin: 'example.com:9464' }",
    "listen: { grpc: '127.0.0.1.nip.io:50051' }",
    "listen: { grpc: '10.0.0.5:50051' }",
    "listen: { grpc: 'unix:/run/guard.sock', socketMode: '666' }",
    "listen: { grpc: 'unix:/run/guard.sock', socketMode: '0777' }",
  ];
  for (const text of refused) {
    t.notOk(parseConfig(text).ok, `refused: ${text}`);
    t.ok(parseConfig(text.replace("}", ", allowPublicBind: true }")).ok, `allowed with the opt-in: ${text}`);
  }
  for (const text of [
    "listen: { grpc: '127.0.0.2:1', admin: 'localhost:2' }",
    "listen: { grpc: '[::1]:1' }",
    "listen: { grpc: 'unix:/run/guard.sock', socketMode: '600' }",
  ]) {
    t.ok(parseConfig(text).ok, `loopback / private socket accepted: ${text}`);
  }
  t.notOk(parseConfig("listen: { socketMode: 'rw-rw----' }").ok, "socket mode must be octal");
});

t.test("unknown keys are refused below the top level, with their path", async (t) => {
  // An unknown top-level section is a warning (ignored, so every default stays in force).
  t.same(parseConfig("listn: {}").warnings, [
    {
      path: "listn",
      message:
        "unknown section, ignored (sections: listen, drain, envoy, annotate, log, limits, admin, cache, admission, budget, contracts, drift, canary, usage, identity, tracing, routes)",
    },
  ]);
  const cases: [string, string][] = [
    ["listen: { grpcc: '127.0.0.1:1' }", "listen.grpcc"],
    ["cache: { maxbytes: 1 }", "cache.maxbytes"],
    ["admission: { limits: {} }", "admission.limits"],
    ["contracts: { protoPath: [] }", "contracts.protoPath"],
    ["routes: [{ name: a, cache: { enable: true } }]", "routes[0].cache.enable"],
    [
      "routes: [{ name: a, complexity: { enabled: true, tiers: [{ name: x, minCost: 1, extra: 1 }] } }]",
      "routes[0].complexity.tiers[0].extra",
    ],
    ["routes: [{ name: a, admission: { enabeld: true } }]", "routes[0].admission.enabeld"],
    ["routes: [{ name: a, contract: { message: a.B, acton: enforce } }]", "routes[0].contract.acton"],
  ];
  for (const [text, path] of cases) {
    const result = parseConfig(text);
    t.notOk(result.ok, text);
    if (!result.ok)
      t.ok(
        result.errors.some((issue) => issue.path === path && issue.message === "unknown key"),
        `names ${path}`,
      );
  }
});

t.test("the ext_proc Unix socket gets the configured file mode", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "guard-sock-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const metrics = createCoreMetrics("test");
  const log = pino({ level: "silent" });
  const pipeline = new Pipeline([], [], { metrics, log, now: () => 0 });
  for (const mode of ["660", "600"]) {
    const path = join(dir, `guard-${mode}.sock`);
    const server = await startGrpcServer(
      `unix:${path}`,
      mode,
      { pipeline: () => pipeline, metrics, log, now: () => 0 },
      configSchema.parse({}).limits,
    );
    const info = await stat(path);
    t.ok(info.isSocket(), "a socket file");
    t.equal((info.mode & 0o777).toString(8), mode, `mode ${mode} applied`);
    await server.drain(0);
  }
});

t.test("labels fed by traffic stay bounded under a flood of distinct values", async (t) => {
  const { metrics, processor } = await fullPipeline();
  const encoder = new TextEncoder();
  const seriesCount = async (): Promise<number> =>
    (await metrics.registry.metrics()).split("\n").filter((line) => line !== "" && !line.startsWith("#")).length;
  const flood = async (from: number, count: number): Promise<void> => {
    for (let index = from; index < from + count; index++) {
      const problem = await exchange(processor, {
        method: "POST",
        // Configured routes and paths no route matches, including ones under a route's prefix.
        path: ["/v1/predict/sentiment", `/v1/predict/model-${index}`, `/unrouted/${index}`, "/v1/chat/completions"][
          index % 4
        ] as string,
        requestHeaders: {
          authorization: `Bearer tenant-${index}`,
          "x-guard-priority": `p${index}`,
          "x-guard-cache": "allow",
          "x-request-id": `r${index}`,
        },
        body: encoder.encode(
          JSON.stringify({
            model: `triage-${index}`,
            text: `t${index}`,
            messages: [{ role: "user", content: `m${index}` }],
          }),
        ),
        status: 200,
        responseHeaders: { "content-type": "application/json", "x-model-version": `v${index}` },
        responseBody: encoder.encode(
          JSON.stringify({ label: index % 2 === 0 ? "POSITIVE" : `L${index}`, score: 0.5, [`field_${index}`]: 1 }),
        ),
      });
      if (problem !== undefined) throw new Error(problem);
    }
  };
  // Enough for every bounded label to reach its cap (contract field paths: 200 per contract).
  await flood(0, 1_200);
  const afterFirst = await seriesCount();
  await flood(1_200, 2_000);
  const afterSecond = await seriesCount();
  // A label value per request would add thousands of lines; capped labels add none.
  t.ok(afterSecond - afterFirst < 20, `series lines after 1 200 requests: ${afterFirst}, after 3 200: ${afterSecond}`);
  const versions = new Set(
    (await registrySamples(metrics.registry, "guard_contract_checks_total")).map((value) => value.labels.model_version),
  );
  t.ok(versions.size <= 22, `${versions.size} model_version values (maxModelVersions 20, plus none and other)`);
  t.ok(versions.has("other"), "later versions fold into other");
});
