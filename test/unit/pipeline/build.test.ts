// The built pipeline asks Envoy for a request body only when a stage reads it. Admission used to
// look at the complexity section and ask for the body on every complexity route, so a body the
// complexity stage scores by its announced length alone (over complexity.maxBodyBytes) was still
// buffered, and one over Envoy's buffer limit was answered 413 for no stage's sake.
import { pino } from "pino";
import t from "tap";
import { parseConfig } from "../../../src/config/load.js";
import { StreamProcessor } from "../../../src/extproc/stream.js";
import type { ProcessingResponse } from "../../../src/extproc/wire.js";
import { ComponentLogs } from "../../../src/log.js";
import { createCoreMetrics } from "../../../src/metrics/registry.js";
import type { AdmissionStage } from "../../../src/pipeline/admission/stage.js";
import { buildPipeline } from "../../../src/pipeline/build.js";
import { requestBody, requestHeaders } from "../../helpers/frames.js";

const MIB = 1024 * 1024;
const BUFFER_LIMIT = 8 * MIB;

function guard(route: string) {
  const loaded = parseConfig(`routes: [{ name: chat, ${route} }]`);
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  const metrics = createCoreMetrics("test");
  const log = pino({ level: "silent" });
  const now = (): number => 0;
  const { pipeline } = buildPipeline(loaded.config, {
    metrics,
    registry: metrics.registry,
    logs: new ComponentLogs(log),
    now,
  });
  const admission = pipeline.stages.find((stage) => stage.name === "admission") as AdmissionStage;
  const sent: ProcessingResponse[] = [];
  const processor = new StreamProcessor(
    { pipeline: () => pipeline, metrics, log, now, requestBufferLimitBytes: () => BUFFER_LIMIT },
    (frame) => sent.push(frame),
  );
  return {
    sent,
    processor,
    /** Cost the route's domains (one per tier) hold: non-zero once the request was admitted. */
    admitted: () => [...admission.pools.values()].reduce((held, pool) => held + pool.inFlightCost, 0),
  };
}

const PRICED_AND_ADMITTED = "complexity: { enabled: true }, admission: { enabled: true }";

for (const [label, length] of [
  ["over Envoy's buffer limit", 9 * MIB],
  ["over complexity.maxBodyBytes", 2 * MIB],
] as const) {
  t.test(`a body ${label} that no stage reads is neither buffered nor refused`, async (t) => {
    const { sent, processor, admitted } = guard(PRICED_AND_ADMITTED);
    await processor.handle(requestHeaders({ "content-length": String(length) }));
    t.equal(sent.length, 1);
    t.equal(sent[0]?.immediateResponse, undefined, "no 413");
    t.equal(sent[0]?.requestHeaders?.response.status, "CONTINUE");
    t.equal(sent[0]?.modeOverride?.requestBodyMode, "NONE", "Envoy is not asked to buffer it");
    t.ok(admitted() > 0, "admitted at the headers, priced by its length");
    processor.close();
  });
}

t.test("a body the complexity stage reads is buffered, and admission waits for its price", async (t) => {
  const { sent, processor, admitted } = guard(PRICED_AND_ADMITTED);
  const body = JSON.stringify({ messages: [{ role: "user", content: "hello" }] });
  await processor.handle(requestHeaders({ "content-length": String(body.length) }));
  t.equal(sent[0]?.modeOverride?.requestBodyMode, "BUFFERED");
  t.equal(admitted(), 0, "not admitted before the cost is known");
  await processor.handle(requestBody(body));
  t.ok(admitted() > 0, "admitted at the body");
  processor.close();
});

t.test("admission alone never asks for the body", async (t) => {
  const { sent, processor, admitted } = guard("admission: { enabled: true }");
  await processor.handle(requestHeaders({ "content-length": String(9 * MIB) }));
  t.equal(sent[0]?.immediateResponse, undefined, "no 413");
  t.equal(sent[0]?.modeOverride?.requestBodyMode, "NONE");
  t.ok(admitted() > 0);
  processor.close();
});
