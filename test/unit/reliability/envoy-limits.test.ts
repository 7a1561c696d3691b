// The guard against Envoy limits it cannot see: a body it would need buffered but Envoy cannot hold
// is refused at the headers with 413, and a deadline extension never shortens message_timeout.
import { pino } from "pino";
import t from "tap";
import { StreamProcessor } from "../../../src/extproc/stream.js";
import type { ProcessingResponse } from "../../../src/extproc/wire.js";
import { createCoreMetrics } from "../../../src/metrics/registry.js";
import { Pipeline } from "../../../src/pipeline/pipeline.js";
import type { Stage } from "../../../src/pipeline/types.js";
import { counterValue, requestHeaders, route } from "../../helpers/frames.js";

const wantsBody: Stage = {
  name: "body",
  start: () => ({ onRequestHeaders: () => ({ type: "continue", needs: { requestBody: true } }) }),
};

async function firstAnswer(
  stages: Stage[],
  headers: Record<string, string>,
  limit = 1_000,
): Promise<{ answer: ProcessingResponse | undefined; metrics: ReturnType<typeof createCoreMetrics> }> {
  const metrics = createCoreMetrics("test");
  const log = pino({ level: "silent" });
  const pipeline = new Pipeline([route("chat")], stages, { metrics, log, now: () => 0 });
  const sent: ProcessingResponse[] = [];
  const processor = new StreamProcessor(
    { pipeline: () => pipeline, metrics, log, now: () => 0, requestBufferLimitBytes: () => limit },
    (frame) => sent.push(frame),
  );
  await processor.handle(requestHeaders(headers));
  processor.close();
  return { answer: sent[0], metrics };
}

t.test("announced body over the buffer limit, body needed → 413 from the guard", async (t) => {
  const { answer, metrics } = await firstAnswer([wantsBody], { "content-length": "1001" });
  t.equal(answer?.immediateResponse?.status.code, 413);
  // The frames helper's path is /v1/chat/completions: an OpenAI-compatible endpoint.
  t.same(JSON.parse(new TextDecoder().decode(answer?.immediateResponse?.body)), {
    error: {
      message: "Request body too large: the request body exceeds the 1000-byte buffer limit",
      type: "invalid_request_error",
      code: "request.too_large",
      param: null,
      limit_bytes: 1000,
    },
  });
  t.equal(
    await counterValue(metrics, "guard_replies_total", { route: "chat", reason: "request.too_large", status: "413" }),
    1,
  );
});

t.test("within the limit, or no stage needs the body → no reply", async (t) => {
  t.equal(
    (await firstAnswer([wantsBody], { "content-length": "1000" })).answer?.requestHeaders?.response.status,
    "CONTINUE",
  );
  t.equal((await firstAnswer([], { "content-length": "50000" })).answer?.requestHeaders?.response.status, "CONTINUE");
  t.equal(
    (await firstAnswer([wantsBody], {})).answer?.requestHeaders?.response.status,
    "CONTINUE",
    "chunked: length unknown",
  );
});

t.test("a deadline extension never shortens Envoy's message timeout", async (t) => {
  const metrics = createCoreMetrics("test");
  const log = pino({ level: "silent" });
  const holding = (ms: number): Stage => ({
    name: "hold",
    start: (exchange) => ({
      onRequestHeaders: () => {
        exchange.extendDeadline(ms);
        return { type: "continue" };
      },
    }),
  });
  for (const [asked, sent] of [
    [500, { seconds: 1, nanos: 0 }],
    [2_500, { seconds: 2, nanos: 500_000_000 }],
  ] as const) {
    const pipeline = new Pipeline([route("chat")], [holding(asked)], { metrics, log, now: () => 0 });
    const out: ProcessingResponse[] = [];
    const processor = new StreamProcessor(
      { pipeline: () => pipeline, metrics, log, now: () => 0, messageTimeoutMs: () => 1_000 },
      (frame) => out.push(frame),
    );
    await processor.handle(requestHeaders({}));
    processor.close();
    t.same(out[0]?.overrideMessageTimeout, sent, `asked ${asked} ms with a 1 s message_timeout`);
  }
});
