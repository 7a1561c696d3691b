import t from "tap";
import type { Outcome, Step } from "../../../src/pipeline/types.js";
import type { DecisionHeaders } from "../../../src/tracing/api.js";
import {
  alwaysSampledKind,
  contractRules,
  outcomeAttributes,
  requestAttributes,
  stepAttributes,
} from "../../../src/tracing/attributes.js";
import { chatExchange } from "../../helpers/exchange.js";

const HEADERS: DecisionHeaders = {
  cache: "x-guard-cache",
  cacheTier: "x-guard-cache-tier",
  cacheReason: "x-guard-cache-reason",
  contract: "x-guard-contract",
};

function reply(reason: string, status: number, headers: Record<string, string> = {}): Step {
  return { type: "reply", reply: { status, reason: reason as never, headers, body: "" } };
}

t.test("a shed: the answer's reason and status, admission's decision", async (t) => {
  t.same(stepAttributes(reply("shed.queue_full", 429), HEADERS), {
    "guard.answer.reason": "shed.queue_full",
    "http.response.status_code": 429,
    "guard.admission.decision": "shed",
  });
});

t.test("an admission: its queue wait from the stage's metadata", async (t) => {
  const step: Step = {
    type: "continue",
    edits: { metadata: { admission: { priority: "standard", cost: 3, wait_ms: 12 } } },
  };
  t.same(stepAttributes(step, HEADERS), { "guard.admission.decision": "admitted", "guard.admission.wait_ms": 12 });
});

t.test("the cache: a hit answered with its tier, a miss and a bypass by their headers", async (t) => {
  t.same(stepAttributes(reply("cache.hit", 200, { "x-guard-cache": "hit", "x-guard-cache-tier": "local" }), HEADERS), {
    "guard.cache.result": "hit",
    "guard.cache.tier": "local",
    "guard.answer.reason": "cache.hit",
    "http.response.status_code": 200,
  });
  t.same(stepAttributes({ type: "continue", edits: { setHeaders: { "x-guard-cache": "miss" } } }, HEADERS), {
    "guard.cache.result": "miss",
  });
  t.same(
    stepAttributes(
      { type: "continue", edits: { setHeaders: { "x-guard-cache": "bypass", "x-guard-cache-reason": "no-store" } } },
      HEADERS,
    ),
    { "guard.cache.result": "bypass", "guard.cache.reason": "no-store" },
  );
});

t.test("a contract verdict: its rule ids, also when the header was cut short", async (t) => {
  const step = reply("contract.violated", 502, { "x-guard-contract": "violated; rules=string.min_len,required" });
  t.same(stepAttributes(step, HEADERS)["guard.contract.rules"], ["string.min_len", "required"]);
  t.same(contractRules("violated; rules=a,b,..."), ["a", "b"]);
  t.same(contractRules("violated; rules=..."), []);
  t.same(contractRules("passed"), []);
  t.same(stepAttributes(step, { ...HEADERS, contract: "" })["guard.contract.rules"], undefined, "header switched off");
});

const exchange = chatExchange();

t.test("the request: route, id, method, path without its query, the GenAI operation", async (t) => {
  const request = { ...exchange.request, path: "/v1/chat/completions?x=1" };
  t.same(requestAttributes(request, "chat"), {
    "guard.route": "chat",
    "guard.request_id": "r",
    "http.request.method": "POST",
    "url.path": "/v1/chat/completions",
    "gen_ai.operation.name": "chat",
  });
  const operation = (path: string) => requestAttributes({ ...request, path }, "r")["gen_ai.operation.name"];
  t.equal(operation("/v1/completions"), "text_completion");
  t.equal(operation("/v1/embeddings"), "embeddings");
  t.equal(operation("/v1/responses"), "chat");
  t.equal(operation("/v2/models/iris/infer"), undefined, "KServe V2 is no GenAI operation");
  t.equal(operation("/v1/predict/sentiment"), undefined);
});

t.test("the outcome: what the stages wrote on the exchange, gen_ai token usage, nothing unset", async (t) => {
  const done = chatExchange({
    tier: "heavy",
    cost: 812.5,
    promptTokens: 300,
    completionTokens: 64,
    inputTokens: 290,
    requestModel: "triage-v1",
    contract: "violated",
    modelVersion: "v2",
  });
  const outcome: Outcome = {
    answeredBy: "upstream",
    status: 200,
    cancelled: false,
    streamed: true,
    upstreamLatencyMs: 40,
  };
  t.same(outcomeAttributes(done, outcome), {
    "guard.priority": "standard",
    "guard.tenant": "anonymous",
    "guard.answered_by": "upstream",
    "http.response.status_code": 200,
    "guard.tier": "heavy",
    "guard.cost": 812.5,
    "guard.cost.prompt_tokens": 300,
    "gen_ai.usage.output_tokens": 64,
    "gen_ai.usage.input_tokens": 290,
    "gen_ai.request.model": "triage-v1",
    "guard.contract.verdict": "violated",
    "guard.model.version": "v2",
    "guard.upstream.latency_ms": 40,
    "guard.stream": true,
  });
  t.same(outcomeAttributes(exchange, { answeredBy: "unknown", cancelled: true }), {
    "guard.priority": "standard",
    "guard.tenant": "anonymous",
    "guard.answered_by": "unknown",
    "guard.cancelled": true,
  });
});

t.test("which outcomes alwaysSample can keep", async (t) => {
  t.equal(
    alwaysSampledKind(exchange, { answeredBy: "guard", reason: "shed.overload", status: 503, cancelled: false }),
    "shed",
  );
  t.equal(
    alwaysSampledKind(exchange, { answeredBy: "guard", reason: "budget.requests", status: 429, cancelled: false }),
    undefined,
  );
  t.equal(
    alwaysSampledKind(chatExchange({ contract: "violated" }), {
      answeredBy: "upstream",
      status: 200,
      cancelled: false,
    }),
    "contract_violation",
    "shadow mode: the answer passed, the verdict is on the exchange",
  );
  t.equal(
    alwaysSampledKind(exchange, {
      answeredBy: "guard",
      reason: "contract.violated",
      status: 200,
      streamed: true,
      cancelled: false,
    }),
    "contract_violation",
    "a stream cut",
  );
  t.equal(
    alwaysSampledKind(exchange, { answeredBy: "guard", reason: "cache.hit", status: 200, cancelled: false }),
    undefined,
  );
});
