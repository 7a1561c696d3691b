// The catalogue of answers the guard gives in place of the upstream's: one row per reason code
// (the x-guard-reason header, the guard_replies_total label, the `code` in the body). A module of
// its own, importing nothing, so the pipeline's shared types can name its codes; answers.ts builds
// the bodies and headers, and docs/answers.md is generated from this table (answers-doc.ts).
/** An error answer: a JSON body in the route's error shape. */
export interface ErrorAnswerSpec {
  readonly kind: "error";
  /** Default status; a route's configuration may set another where statusSetting names the key. */
  readonly status: number;
  readonly statusSetting?: string;
  /** Whether the answer carries Retry-After (whole seconds). */
  readonly retryAfter: boolean;
  /**
   * False when asking again gets the same answer (a deterministic model break, a body too large):
   * the answer says `x-should-retry: false`, which the OpenAI SDKs honour instead of retrying 5xx
   * answers, so one call does not make the model generate the same broken answer three times.
   */
  readonly retryable: boolean;
  /** `error.type` of the OpenAI shape; SDKs pick their exception class by status, and show this. */
  readonly openAiType: "rate_limit_error" | "invalid_request_error" | "server_error";
  readonly title: string;
  readonly description: string;
  /** The answer's own members besides the shape's (problem object / OpenAI `error` object). */
  readonly members: readonly string[];
}

/** A stored upstream response served again: its own status, headers and body, no error shape. */
export interface ReplayAnswerSpec {
  readonly kind: "replay";
  readonly title: string;
  readonly description: string;
}

export type AnswerSpec = ErrorAnswerSpec | ReplayAnswerSpec;

// The codes are part of the interface: metrics, alerts (ops/prometheus), dashboards, bench
// reports and clients match on them. Add codes; never rename one.
export const ANSWERS = {
  "shed.overload": {
    kind: "error",
    status: 429,
    retryAfter: true,
    retryable: true,
    openAiType: "rate_limit_error",
    title: "Overloaded",
    description:
      "No room in the pool's admission budget, and the request's class does not queue (`maxWaitMs: 0`) or its estimated wait already exceeds the class's `maxWaitMs`. Retry-After is the time the upstream needs to work off the queue.",
    members: ["priority", "retry_after_seconds"],
  },
  "shed.queue_full": {
    kind: "error",
    status: 429,
    retryAfter: true,
    retryable: true,
    openAiType: "rate_limit_error",
    title: "Admission queue full",
    description:
      "No room in the pool's admission budget, and the queue of the request's class already holds `maxQueue` requests.",
    members: ["priority", "retry_after_seconds"],
  },
  "shed.queue_timeout": {
    kind: "error",
    status: 429,
    retryAfter: true,
    retryable: true,
    openAiType: "rate_limit_error",
    title: "Admission queue wait exceeded",
    description: "The request waited its class's `maxWaitMs` in the admission queue without budget freeing up.",
    members: ["priority", "retry_after_seconds"],
  },
  "shed.circuit_open": {
    kind: "error",
    status: 503,
    retryAfter: true,
    retryable: true,
    openAiType: "server_error",
    title: "Upstream unavailable",
    description:
      "The pool's circuit breaker is open after upstream failures (or half-open with its probes taken); the upstream is spared. Retry-After is the remaining open time.",
    members: ["priority", "retry_after_seconds"],
  },
  "budget.requests": {
    kind: "error",
    status: 429,
    retryAfter: true,
    retryable: true,
    openAiType: "rate_limit_error",
    title: "Request budget exceeded",
    description:
      "The tenant sent `routes[].budget.requestsPerMinute` requests to the route's budget pool within the last minute. The answer carries OpenAI's rate-limit headers (`x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests`, `x-ratelimit-reset-requests`, and the same for tokens); Retry-After is the time until the window forgets enough.",
    members: ["limit", "retry_after_seconds"],
  },
  "budget.tokens": {
    kind: "error",
    status: 429,
    retryAfter: true,
    retryable: true,
    openAiType: "rate_limit_error",
    title: "Token budget exceeded",
    description:
      "The tenant used `routes[].budget.tokensPerMinute` tokens (prompt tokens as estimated, completion tokens as the upstream reported them) of the route's budget pool within the last minute. Headers as for `budget.requests`.",
    members: ["limit", "retry_after_seconds"],
  },
  "shed.retry_budget": {
    kind: "error",
    status: 429,
    retryAfter: true,
    retryable: true,
    openAiType: "rate_limit_error",
    title: "Retry budget exhausted",
    description:
      "A retry (`admission.retries.headers`: the OpenAI SDKs' `x-stainless-retry-count`, Envoy's `x-envoy-attempt-count`) found no room in the pool's admission budget, and the pool's retry budget (`admission.retries`: a share of the first attempts admitted) is spent: while the upstream is saturated, retries must not multiply its work. Retry-After is the time the upstream needs to work off the queue.",
    members: ["priority", "retry_after_seconds"],
  },
  "shed.cancelled": {
    kind: "error",
    status: 503,
    retryAfter: true,
    retryable: true,
    openAiType: "server_error",
    title: "Client gone while queued",
    description:
      "Settles the held hook of a queued request whose stream ended. No client receives it, and it is not counted as a shed.",
    members: ["priority", "retry_after_seconds"],
  },
  "route.maintenance": {
    kind: "error",
    status: 503,
    statusSetting: "routes[].maintenance.status",
    retryAfter: true,
    retryable: true,
    openAiType: "server_error",
    title: "Route in maintenance",
    description:
      "The route is out of service by configuration (`routes[].maintenance`); the upstream is not called. The detail is the configured `message`; Retry-After is `retryAfterSeconds`.",
    members: ["route", "retry_after_seconds"],
  },
  "request.too_large": {
    kind: "error",
    status: 413,
    retryAfter: false,
    retryable: false,
    openAiType: "invalid_request_error",
    title: "Request body too large",
    description:
      "A stage needs the request body buffered, and its announced `content-length` exceeds Envoy's buffer limit (`envoy.bufferLimitBytes`): refused at the headers instead of hanging.",
    members: ["limit_bytes"],
  },
  "request.context_length_exceeded": {
    kind: "error",
    status: 400,
    retryAfter: false,
    retryable: false,
    openAiType: "invalid_request_error",
    title: "Prompt longer than the model's context window",
    description:
      "The complexity stage's estimate of the prompt's tokens exceeds the route's `complexity.contextWindow`: the upstream would refuse it (llama.cpp answers 400 `context_length_exceeded`), so it is not sent, queued or charged to the upstream's admission budget.",
    members: ["route", "context_window", "estimated_prompt_tokens"],
  },
  "contract.violated": {
    kind: "error",
    status: 502,
    statusSetting: "routes[].contract.status",
    retryAfter: false,
    retryable: false,
    openAiType: "server_error",
    title: "Upstream response violates its output contract",
    description:
      "Under `action: enforce`, the upstream's response broke the route's output contract. The response is withheld; rule ids, fields and messages of the violations are in the answer. A streamed response is cut instead: what conformed was already sent, and the stream ends with the OpenAI error object (type `contract_violation`, this code): an SSE `error` event and no `[DONE]`, or, in an NDJSON stream, a last line `{\"error\": {…}}` and no `done: true` line; the upstream request is reset so the model stops generating.",
    members: ["route", "contract", "model_version", "violation_count", "truncated", "violations"],
  },
  "contract.unverifiable": {
    kind: "error",
    status: 502,
    statusSetting: "routes[].contract.status",
    retryAfter: false,
    retryable: false,
    openAiType: "server_error",
    title: "Upstream response could not be checked against its output contract",
    description:
      "Under `action: enforce` (or `unverifiable: reject`), the response could not be checked: streamed, too large, a decompression bomb, or an encoding the guard cannot decode. The response is withheld.",
    members: ["route", "contract", "model_version", "reason"],
  },
  "cache.hit": {
    kind: "replay",
    title: "Cached response",
    description:
      "A stored upstream response served again with its status, allow-listed headers and body, plus `x-guard-cache: hit`, `x-guard-cache-tier` and `age`. Not an error: neither error shape applies.",
  },
} as const satisfies Readonly<Record<string, AnswerSpec>>;

export type AnswerCode = keyof typeof ANSWERS;
export type Spec<C extends AnswerCode> = (typeof ANSWERS)[C];
export type ErrorCode = { [C in AnswerCode]: Spec<C> extends ErrorAnswerSpec ? C : never }[AnswerCode];
export type RetryCode = { [C in ErrorCode]: Spec<C> extends { retryAfter: true } ? C : never }[ErrorCode];
export type ConfiguredStatusCode = {
  [C in ErrorCode]: Spec<C> extends { statusSetting: string } ? C : never;
}[ErrorCode];
