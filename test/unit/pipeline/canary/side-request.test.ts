// The guard's own side request (shadow comparison) through the whole built pipeline and the ext_proc
// stream: recognised before any route match, sent to its pool with nothing else asked of Envoy, no
// stage started (the route's cache and admission included), not counted as a client's request.
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import t from "tap";
import { prepareText } from "../../../../src/config/prepare.js";
import { StreamProcessor } from "../../../../src/extproc/stream.js";
import type { ProcessingResponse } from "../../../../src/extproc/wire.js";
import { ComponentLogs } from "../../../../src/log.js";
import { createCoreMetrics } from "../../../../src/metrics/registry.js";
import { buildPipeline } from "../../../../src/pipeline/build.js";
import { CanaryStates, SHADOW_HEADER } from "../../../../src/pipeline/canary/stage.js";
import { requestHeaders, setHeadersOf } from "../../../helpers/frames.js";
import { registrySum } from "../../../helpers/registry-metrics.js";

const PROTO_DIR = fileURLToPath(new URL("../../../../../proto/contracts", import.meta.url));

async function guard() {
  const prepared = await prepareText(`
contracts: { protoPaths: ["${PROTO_DIR}"] }
canary: { envoyUrl: "http://127.0.0.1:1" }
routes:
  - name: eta
    match: { pathPrefix: /v1/predict/eta, headers: { x-tenant-kind: paying } }
    contract: { message: demo.v1.DeliveryEta }
    cache: { enabled: true }
    admission: { enabled: true }
    canary: { stable: v1, candidates: [{ pool: v3, weight: 0 }], shadow: { pool: v3, sampleRate: 0 } }
`);
  if (!prepared.ok) throw new Error(JSON.stringify(prepared.errors));
  const metrics = createCoreMetrics("test");
  const log = pino({ level: "silent" });
  const now = (): number => 0;
  const canaryStates = new CanaryStates();
  const { pipeline } = buildPipeline(
    prepared.config,
    { metrics, registry: metrics.registry, logs: new ComponentLogs(log), now, canaryStates },
    prepared.contracts,
  );
  t.teardown(() => pipeline.close());
  const sent: ProcessingResponse[] = [];
  const processor = new StreamProcessor({ pipeline: () => pipeline, metrics, log, now }, (frame) => sent.push(frame));
  return { sent, processor, metrics, secret: canaryStates.shadowSecret };
}

t.test("a side request is routed to its pool, and nothing else happens", async (t) => {
  const { sent, processor, metrics, secret } = await guard();
  // No x-tenant-kind: the route would not match a client's request like it; the header names the route.
  await processor.handle(
    requestHeaders({ ":path": "/v1/predict/eta", "x-guard-cache": "allow", [SHADOW_HEADER]: `eta v3 ${secret}` }),
  );
  t.equal(sent.length, 1);
  t.same(setHeadersOf(sent[0]), { "x-guard-pool": "v3" });
  t.same(sent[0]?.requestHeaders?.response.headerMutation?.removeHeaders, [SHADOW_HEADER]);
  t.equal(sent[0]?.requestHeaders?.response.clearRouteCache, true);
  t.same(
    sent[0]?.modeOverride && {
      request: sent[0].modeOverride.requestBodyMode,
      response: sent[0].modeOverride.responseHeaderMode,
    },
    { request: "NONE", response: "SKIP" },
    "neither body nor answer is asked for: the answer goes to the guard that sent it, unseen by stages",
  );
  processor.close();
  t.equal(await registrySum(metrics.registry, "guard_requests_total"), 0, "not a client's request");
  t.equal(await registrySum(metrics.registry, "guard_cache_misses_total"), 0, "the cache never looked");
  t.equal(await registrySum(metrics.registry, "guard_admission_admitted_cost_total"), 0, "nor admission");
});

t.test("a forged side request is a client's request like any other", async (t) => {
  const { sent, processor, metrics } = await guard();
  await processor.handle(
    requestHeaders({
      ":path": "/v1/predict/eta",
      "x-tenant-kind": "paying",
      [SHADOW_HEADER]: "eta v3 0123456789abcdef0123456789abcdef",
    }),
  );
  t.equal(setHeadersOf(sent[0])["x-guard-pool"], "v1", "the stable pool, as for any client");
  t.ok(sent[0]?.requestHeaders?.response.headerMutation?.removeHeaders?.includes(SHADOW_HEADER), "the header removed");
  processor.close();
  t.equal(await registrySum(metrics.registry, "guard_requests_total"), 1);
});
