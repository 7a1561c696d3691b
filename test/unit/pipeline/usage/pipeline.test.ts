// The usage stage in a pipeline driven by ext_proc frames: it sits outside the stages that may hold
// back or cut a streamed answer (build.ts), so it measures what the client gets, when it gets it.
import pino from "pino";
import t from "tap";
import { parseConfig } from "../../../../src/config/load.js";
import { StreamProcessor } from "../../../../src/extproc/stream.js";
import type { ProcessingRequest, ProcessingResponse } from "../../../../src/extproc/wire.js";
import { ComponentLogs } from "../../../../src/log.js";
import { createCoreMetrics } from "../../../../src/metrics/registry.js";
import { buildPipeline, stageConfigs } from "../../../../src/pipeline/build.js";
import { Pipeline } from "../../../../src/pipeline/pipeline.js";
import type { ChunkStep, Stage } from "../../../../src/pipeline/types.js";
import { createUsageStage } from "../../../../src/pipeline/usage/stage.js";
import { requestHeaders, responseBody, responseHeaders, route } from "../../../helpers/frames.js";
import { registrySum } from "../../../helpers/registry-metrics.js";
import { chatStream } from "../../streams/fixtures.js";

const SSE = { "content-type": "text/event-stream" };
const DOC = {
  id: "c",
  object: "chat.completion",
  created: 1,
  model: "m",
  choices: [{ index: 0, message: { role: "assistant", content: "abcdefghi" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 },
};

/** An inner stage (a contract checker's stand-in) answering each chunk with `onChunk`. */
function inner(onChunk: (chunk: Uint8Array, end: boolean) => ChunkStep): Stage {
  return {
    name: "inner",
    start: () => ({
      onRequestHeaders: () => ({ type: "continue", needs: { responseHeaders: true } }),
      onResponseHeaders: () => ({ type: "continue", responseBody: "stream" }),
      onResponseChunk: onChunk,
    }),
  };
}

function stack(innerStage: Stage) {
  const config = parseConfig("routes: [{ name: chat }]");
  if (!config.ok) throw new Error("config");
  const metrics = createCoreMetrics("test");
  const log = pino({ level: "silent" });
  let clock = 0;
  const now = (): number => clock;
  const usage = createUsageStage(stageConfigs(config.config).usage, { registry: metrics.registry, log, now });
  const pipeline = new Pipeline([route("chat")], [usage, innerStage], { metrics, log, now });
  const sent: ProcessingResponse[] = [];
  const processor = new StreamProcessor({ pipeline: () => pipeline, metrics, log, now }, (frame) => sent.push(frame));
  return {
    processor,
    sum: (name: string, labels: Record<string, string> = {}) => registrySum(metrics.registry, name, labels),
    async at(ms: number, frame: ProcessingRequest): Promise<void> {
      clock = ms;
      await processor.handle(frame);
    },
  };
}

const events = chatStream(DOC).split(/(?<=\n\n)/);

t.test("bytes held back inside the usage stage reach it, and the client, when released", async (t) => {
  let held = "";
  const s = stack(
    inner((chunk, end) => {
      held += new TextDecoder().decode(chunk);
      // Held until 300 ms: the client sees nothing before.
      if (!end && !held.includes("[DONE]") && held.length < 400) return { type: "forward", bytes: new Uint8Array() };
      const out = new TextEncoder().encode(held);
      held = "";
      return { type: "forward", bytes: out };
    }),
  );
  await s.at(0, requestHeaders({}, true));
  await s.at(50, responseHeaders(200, SSE));
  await s.at(100, responseBody(events.slice(0, 2).join(""), false));
  await s.at(300, responseBody(events.slice(2).join(""), false));
  await s.at(310, responseBody("", true));
  t.equal(s.processor.state, "done");
  t.equal(await s.sum("guard_stream_time_to_first_token_seconds_sum"), 0.3, "timed at the release, not at 100 ms");
  t.equal(await s.sum("guard_tokens_total", { kind: "completion" }), 3);
  t.equal(await s.sum("guard_streams_total", { route: "chat", outcome: "completed" }), 1);
});

t.test("a stream cut inside the usage stage: counted as cut, usage never came", async (t) => {
  const s = stack(
    inner((chunk) =>
      new TextDecoder().decode(chunk).includes("def")
        ? { type: "cut", bytes: new TextEncoder().encode("event: error\ndata: {}\n\n"), reason: "contract.violated" }
        : { type: "forward", bytes: chunk },
    ),
  );
  await s.at(0, requestHeaders({}, true));
  await s.at(10, responseHeaders(200, SSE));
  await s.at(20, responseBody(events.slice(0, 2).join(""), false));
  await s.at(30, responseBody(events.slice(2).join(""), false));
  t.equal(s.processor.state, "done");
  t.equal(await s.sum("guard_streams_total", { outcome: "cut" }), 1);
  t.equal(await s.sum("guard_stream_usage_missing_total"), 0);
  t.equal(await s.sum("guard_stream_time_to_first_token_seconds_count"), 1);
});

t.test(
  "a cut that releases held output with its error event: the usage stage times the first token by it",
  async (t) => {
    let held = "";
    const s = stack(
      inner((chunk) => {
        held += new TextDecoder().decode(chunk);
        if (!held.includes("def")) return { type: "forward", bytes: new Uint8Array() };
        // The settled events go out, then the error event ends the stream.
        const released = `${events.slice(0, 2).join("")}event: error\ndata: {}\n\n`;
        return { type: "cut", bytes: new TextEncoder().encode(released), reason: "contract.violated" };
      }),
    );
    await s.at(0, requestHeaders({}, true));
    await s.at(10, responseHeaders(200, SSE));
    await s.at(20, responseBody(events.slice(0, 2).join(""), false));
    t.equal(await s.sum("guard_stream_time_to_first_token_seconds_count"), 0, "everything is held until the cut");
    await s.at(40, responseBody(events.slice(2).join(""), false));
    t.equal(s.processor.state, "done");
    t.equal(await s.sum("guard_streams_total", { outcome: "cut" }), 1);
    t.equal(await s.sum("guard_stream_time_to_first_token_seconds_count"), 1, "the released output was seen");
    t.equal(await s.sum("guard_stream_time_to_first_token_seconds_sum"), 0.04, "at the cut, when the client got it");
  },
);

t.test("a client leaving mid-stream: cancelled", async (t) => {
  const s = stack(inner((chunk) => ({ type: "forward", bytes: chunk })));
  await s.at(0, requestHeaders({}, true));
  await s.at(10, responseHeaders(200, SSE));
  await s.at(20, responseBody(events.slice(0, 3).join(""), false));
  s.processor.close();
  t.equal(await s.sum("guard_streams_total", { outcome: "cancelled" }), 1);
});

t.test("the line-up: usage after complexity, before the cache, admission and contracts", async (t) => {
  const config = parseConfig("routes: [{ name: chat }]");
  if (!config.ok) throw new Error("config");
  const metrics = createCoreMetrics("test");
  const { pipeline } = buildPipeline(config.config, {
    metrics,
    registry: metrics.registry,
    logs: new ComponentLogs(pino({ level: "silent" })),
    now: () => 0,
  });
  t.same(
    pipeline.stages.map((stage) => stage.name),
    ["maintenance", "annotate", "canary", "complexity", "usage", "cache", "budget", "admission"],
  );
});
