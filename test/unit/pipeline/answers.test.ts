import t from "tap";
import { immediateResponse } from "../../../src/extproc/wire.js";
import { ANSWERS, type AnswerCode, type ErrorCode } from "../../../src/pipeline/answer-catalogue.js";
import {
  type AnswerFormat,
  type AnswerInput,
  answerFormatFor,
  guardAnswer,
  streamErrorEvent,
} from "../../../src/pipeline/answers.js";
import { violatedAnswer } from "../../../src/pipeline/contracts/answer.js";
import type { JsonValue, Reply } from "../../../src/pipeline/types.js";

const ERROR_CODES = (Object.keys(ANSWERS) as AnswerCode[]).filter(
  (code): code is ErrorCode => ANSWERS[code].kind === "error",
);

/** An input for any error code: every member the table lists, Retry-After where it applies. */
function inputFor(code: ErrorCode, format: AnswerFormat): AnswerInput<ErrorCode> {
  const spec = ANSWERS[code];
  const extensions = Object.fromEntries(spec.members.map((member) => [member, `${member} value`]));
  const base = { format, detail: `detail of ${code}`, extensions };
  return (spec.retryAfter ? { ...base, retryAfterMs: 6_200 } : base) as AnswerInput<ErrorCode>;
}

function bodyOf(reply: Reply): Record<string, JsonValue> {
  return JSON.parse(String(reply.body)) as Record<string, JsonValue>;
}

function wireHeaders(reply: Reply): Record<string, string> {
  const headers = immediateResponse(reply).immediateResponse?.headers?.setHeaders ?? [];
  return Object.fromEntries(headers.map((o) => [o.header.key, new TextDecoder().decode(o.header.rawValue)]));
}

t.test("every error code in the problem shape: RFC 9457 members, the code, the table's status", async (t) => {
  for (const code of ERROR_CODES) {
    const spec = ANSWERS[code];
    const reply = guardAnswer(code, inputFor(code, "problem"));
    t.equal(reply.status, spec.status, code);
    t.equal(reply.reason, code);
    t.same(
      bodyOf(reply),
      {
        type: `urn:inference-guard:problem:${code.replace(/[._]/g, "-")}`,
        title: spec.title,
        status: spec.status,
        detail: `detail of ${code}`,
        code,
        ...Object.fromEntries(spec.members.map((member) => [member, `${member} value`])),
      },
      code,
    );
    t.same(
      wireHeaders(reply),
      {
        "content-type": "application/problem+json",
        "cache-control": "no-store",
        ...(spec.retryAfter ? { "retry-after": "7", "retry-after-ms": "6200" } : {}),
        ...(spec.retryable ? {} : { "x-should-retry": "false" }),
        "x-guard-reason": code,
      },
      `${code}: headers on the wire`,
    );
  }
});

t.test("every error code in the OpenAI shape: the error object the SDKs read", async (t) => {
  for (const code of ERROR_CODES) {
    const spec = ANSWERS[code];
    const reply = guardAnswer(code, inputFor(code, "openai"));
    t.equal(reply.status, spec.status, code);
    t.same(
      bodyOf(reply),
      {
        error: {
          message: `${spec.title}: detail of ${code}`,
          type: spec.openAiType,
          code,
          param: null,
          ...Object.fromEntries(spec.members.map((member) => [member, `${member} value`])),
        },
      },
      code,
    );
    t.same(
      wireHeaders(reply),
      {
        "content-type": "application/json",
        "cache-control": "no-store",
        ...(spec.retryAfter ? { "retry-after": "7", "retry-after-ms": "6200" } : {}),
        ...(spec.retryable ? {} : { "x-should-retry": "false" }),
        "x-guard-reason": code,
      },
      `${code}: headers on the wire`,
    );
  }
});

t.test("a configured status replaces the table's in the status line and the problem", async (t) => {
  const reply = guardAnswer("route.maintenance", {
    format: "problem",
    status: 410,
    detail: "gone for good",
    retryAfterMs: 0,
    extensions: { route: "chat", retry_after_seconds: 0 },
  });
  t.equal(reply.status, 410);
  t.match(bodyOf(reply), { status: 410, detail: "gone for good" });
  t.equal(reply.headers["retry-after"], "0");
  t.equal(reply.headers["retry-after-ms"], "0");
});

t.test("on OpenAI paths a configured status brings the error type that status means", async (t) => {
  const maintenance = (status: number) =>
    bodyOf(
      guardAnswer("route.maintenance", {
        format: "openai",
        status,
        detail: "down",
        retryAfterMs: 5_000,
        extensions: { route: "chat", retry_after_seconds: 5 },
      }),
    );
  t.match(maintenance(503), { error: { type: "server_error" } }, "the table's own status");
  t.match(maintenance(410), { error: { type: "invalid_request_error" } });
  t.match(maintenance(429), { error: { type: "rate_limit_error" } });
  t.match(maintenance(500), { error: { type: "server_error" } });
});

t.test("the shape's own members win over an extension of the same name; stage headers are kept", async (t) => {
  const hostile = { route: "r", retry_after_seconds: 1, code: "forged", message: "forged", status: 200 };
  const input = {
    detail: "d",
    retryAfterMs: 1_000,
    headers: { "x-guard-contract": "violated", "content-type": "text/plain" },
    extensions: hostile,
  };
  const problem = guardAnswer("route.maintenance", { ...input, format: "problem" });
  t.match(bodyOf(problem), { code: "route.maintenance", status: 503, message: "forged" });
  t.equal(problem.headers["content-type"], "application/problem+json");
  t.equal(problem.headers["x-guard-contract"], "violated");
  const openai = bodyOf(guardAnswer("route.maintenance", { ...input, format: "openai" })).error;
  t.match(openai, { code: "route.maintenance", message: "Route in maintenance: d" });
});

t.test("OpenAI-compatible endpoints by path, whatever the prefix; everything else gets problems", async (t) => {
  for (const path of [
    "/v1/chat/completions",
    "/v1/completions?stream=false",
    "/openai/deployments/x/embeddings",
    "/v1/responses",
  ])
    t.equal(answerFormatFor(path), "openai", path);
  for (const path of ["/v1/predict/sentiment", "/v2/models/m/infer", "/v1/chat", "/", "/v1/models"])
    t.equal(answerFormatFor(path), "problem", path);
});

t.test("a contract answer names the first violations in its detail and counts the rest", async (t) => {
  const violation = (n: number) => ({ field: `f${n}`, rule: `rule.${n}`, message: `message ${n}` });
  const reply = violatedAnswer({
    format: "openai",
    status: 502,
    route: "chat",
    contract: "demo.v1.X",
    modelVersion: undefined,
    headers: {},
    violations: [1, 2, 3, 4].map(violation),
    total: 6,
  });
  const { error } = bodyOf(reply) as { error: Record<string, JsonValue> };
  t.equal(
    error.message,
    "Upstream response violates its output contract: 6 violations of demo.v1.X: " +
      "f1: message 1 (rule.1); f2: message 2 (rule.2); f3: message 3 (rule.3); 3 more",
  );
  t.match(error, { model_version: null, violation_count: 6, truncated: true });
  t.equal((error.violations as JsonValue[]).length, 4);
});

t.test("an in-stream error event: one SSE event whose data is the OpenAI error object", async (t) => {
  const event = streamErrorEvent(
    "contract.violated",
    {
      type: "contract_violation",
      detail: "1 violation of demo.v1.TicketTriage: priority: value must be in list (enum.in)",
      extensions: {
        route: "chat",
        contract: "demo.v1.TicketTriage",
        model_version: "v2",
        violation_count: 1,
        truncated: false,
        violations: [{ field: "priority", rule: "enum.in", message: "value must be in list" }],
      },
    },
    "sse",
  );
  t.ok(event.startsWith("event: error\ndata: "), "a named error event");
  t.ok(event.endsWith("\n\n"), "ended by a blank line");
  t.equal(event.split("\n").length, 4, "a single data line");
  const data = JSON.parse(event.slice("event: error\ndata: ".length)) as { error: Record<string, unknown> };
  t.match(data.error, {
    message: /^Upstream response violates its output contract: 1 violation of demo\.v1\.TicketTriage/,
    type: "contract_violation",
    code: "contract.violated",
    param: null,
    model_version: "v2",
    violations: [{ field: "priority", rule: "enum.in" }],
  });
});
