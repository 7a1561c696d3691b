import t from "tap";
import {
  type CompletionContext,
  completionFrom,
  upstreamServiceMs,
} from "../../../../src/pipeline/admission/completion.js";

const context: CompletionContext = {
  heldMs: 0,
  slowCallMs: 1_000,
  predictedLatencyMs: undefined,
  actualCost: undefined,
  upstreamServiceMs: undefined,
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

t.test(
  "Envoy's own 504 is a timeout: a censored sample for the limit, no verdict unless slower than slowCallMs",
  async (t) => {
    const timeout = { status: 504, answeredBy: "upstream", cancelled: false, upstreamLatencyMs: 600 } as const;
    t.same(completionFrom(timeout, { ...context, heldMs: 600, predictedLatencyMs: 200 }), {
      latencyMs: 600,
      censored: true,
      predictedLatencyMs: 200,
    });
    t.same(
      completionFrom({ ...timeout, upstreamLatencyMs: 1_200 }, { ...context, heldMs: 1_200 }),
      { verdict: "failure", latencyMs: 1_200, censored: true },
      "a call that ran past slowCallMs before timing out is a slow call",
    );
    t.same(
      completionFrom(timeout, { ...context, upstreamServiceMs: 598 }),
      { verdict: "failure" },
      "a 504 the upstream itself sent (Envoy timed its answer) is an upstream failure",
    );
  },
);

t.test("5xx the upstream sent and Envoy's connect failures and resets are failures", async (t) => {
  for (const [status, upstreamServiceMs] of [
    [500, 12],
    [502, 3],
    [503, undefined],
  ] as const) {
    t.same(
      completionFrom(
        { status, answeredBy: "upstream", cancelled: false, upstreamLatencyMs: 15 },
        { ...context, upstreamServiceMs },
      ),
      { verdict: "failure" },
      `${status}`,
    );
  }
});

t.test(
  "a client that gave up before the answer began: no verdict, however long it waited; a censored sample",
  async (t) => {
    t.same(completionFrom({ answeredBy: "unknown", cancelled: true }, { ...context, heldMs: 5_000 }), {
      latencyMs: 5_000,
      censored: true,
    });
    t.same(
      completionFrom({ answeredBy: "unknown", cancelled: true, upstreamLatencyMs: 30 }, { ...context, heldMs: 5_000 }),
      {},
      "one that left after its answer began tells nothing",
    );
  },
);

t.test("the limit learns Envoy's measure of the upstream, free of the guard's own delays", async (t) => {
  const answer = { status: 200, answeredBy: "upstream", cancelled: false, upstreamLatencyMs: 180 } as const;
  t.same(completionFrom(answer, { ...context, upstreamServiceMs: 95 }), { verdict: "success", latencyMs: 95 });
  t.same(
    completionFrom({ ...answer, streamed: true, generationMs: 2_180 }, { ...context, upstreamServiceMs: 95 }),
    { verdict: "success", latencyMs: 2_095 },
    "a stream: Envoy's time to the first byte, then the generation the guard timed",
  );
  t.equal(upstreamServiceMs("95"), 95);
  t.equal(upstreamServiceMs(" 7 "), 7);
  for (const bad of [undefined, "", "-3", "1.5", "12, 13", "abc"]) t.equal(upstreamServiceMs(bad), undefined, `${bad}`);
});
