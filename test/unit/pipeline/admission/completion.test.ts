import t from "tap";
import { type CompletionContext, completionFrom } from "../../../../src/pipeline/admission/completion.js";

const context: CompletionContext = {
  heldMs: 0,
  slowCallMs: 1_000,
  predictedLatencyMs: undefined,
  actualCost: undefined,
};

t.test("a streamed answer: the circuit judges its first token, the limit learns its whole generation", async (t) => {
  const streamed = {
    status: 200,
    answeredBy: "upstream",
    cancelled: false,
    streamed: true,
    upstreamLatencyMs: 40,
    generationMs: 5_000,
  } as const;
  t.same(completionFrom(streamed, { ...context, heldMs: 5_000, actualCost: 400 }), {
    verdict: "success",
    latencyMs: 5_000,
    actualCost: 400,
  });
  t.same(
    completionFrom({ ...streamed, upstreamLatencyMs: 1_500 }, context),
    { verdict: "failure" },
    "a first token later than slowCallMs is a slow call",
  );
});

t.test("an answer without usage or prediction carries only its latency", async (t) => {
  t.same(completionFrom({ status: 200, answeredBy: "upstream", cancelled: false, upstreamLatencyMs: 120 }, context), {
    verdict: "success",
    latencyMs: 120,
  });
  t.same(
    completionFrom(
      { status: 200, answeredBy: "upstream", cancelled: false, upstreamLatencyMs: 120 },
      { ...context, predictedLatencyMs: 100 },
    ),
    { verdict: "success", latencyMs: 120, predictedLatencyMs: 100 },
  );
});
