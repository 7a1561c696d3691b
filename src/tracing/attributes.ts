// Span attribute names (docs/observability.md lists them; dashboards and saved queries match on
// them: add names, never rename one) and how the guard's decisions become them. Pure functions over
// the pipeline's values, so each decision's attributes are tested without an SDK.
import { type PathShape, shapeFromPath } from "../pipeline/request-shape.js";
import type { Exchange, JsonValue, Outcome, RequestInfo, Step } from "../pipeline/types.js";
import type { DecisionHeaders } from "./api.js";

export type AttributeValue = string | number | boolean | string[];
export type Attributes = Record<string, AttributeValue>;

export const ATTRIBUTES = {
  // OpenTelemetry semantic conventions (HTTP, GenAI).
  httpMethod: "http.request.method",
  urlPath: "url.path",
  httpStatus: "http.response.status_code",
  outputTokens: "gen_ai.usage.output_tokens",
  inputTokens: "gen_ai.usage.input_tokens",
  requestModel: "gen_ai.request.model",
  operation: "gen_ai.operation.name",
  // The guard's own, under guard.*.
  route: "guard.route",
  requestId: "guard.request_id",
  priority: "guard.priority",
  tenant: "guard.tenant",
  answeredBy: "guard.answered_by",
  reason: "guard.answer.reason",
  tier: "guard.tier",
  cost: "guard.cost",
  promptTokensEstimate: "guard.cost.prompt_tokens",
  predictedLatencyMs: "guard.cost.predicted_latency_ms",
  admission: "guard.admission.decision",
  admissionWaitMs: "guard.admission.wait_ms",
  cache: "guard.cache.result",
  cacheTier: "guard.cache.tier",
  cacheReason: "guard.cache.reason",
  contract: "guard.contract.verdict",
  contractRules: "guard.contract.rules",
  modelVersion: "guard.model.version",
  streamed: "guard.stream",
  streamCut: "guard.stream.cut",
  cancelled: "guard.cancelled",
  upstreamLatencyMs: "guard.upstream.latency_ms",
  generationMs: "guard.generation_ms",
  stage: "guard.stage",
  phase: "guard.phase",
} as const;

/** The GenAI conventions' well-known operation of each API the guard tells by its path. */
const OPERATIONS: Readonly<Partial<Record<PathShape, string>>> = {
  chat: "chat",
  // OpenAI's Responses API is its chat API's successor; the conventions name no other operation for it.
  responses: "chat",
  completions: "text_completion",
  embeddings: "embeddings",
};

/** The request's attributes, known when the exchange opens (url.path without its query). */
export function requestAttributes(request: RequestInfo, route: string): Attributes {
  const query = request.path.indexOf("?");
  const shape = shapeFromPath(request.path);
  const operation = shape === undefined ? undefined : OPERATIONS[shape];
  return {
    [ATTRIBUTES.route]: route,
    [ATTRIBUTES.requestId]: request.requestId,
    [ATTRIBUTES.httpMethod]: request.method,
    [ATTRIBUTES.urlPath]: query === -1 ? request.path : request.path.slice(0, query),
    ...(operation === undefined ? {} : { [ATTRIBUTES.operation]: operation }),
  };
}

/** The rule ids of a contract verdict header ("violated; rules=a,b" or cut short with ",..."). */
export function contractRules(header: string): string[] {
  const at = header.indexOf("rules=");
  if (at === -1) return [];
  return header
    .slice(at + "rules=".length)
    .split(",")
    .filter((rule) => rule !== "" && rule !== "...");
}

function isRecord(value: JsonValue | undefined): value is { [key: string]: JsonValue } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * What one stage's step says of the exchange's decisions: the guard's own answer, the cache's and
 * the contract's verdict headers, admission's metadata. Later steps overwrite earlier ones.
 */
export function stepAttributes(step: Step, headers: DecisionHeaders): Attributes {
  const attributes: Attributes = {};
  const said = step.type === "reply" ? step.reply.headers : step.edits?.setHeaders;
  const cache = said?.[headers.cache];
  if (cache !== undefined) attributes[ATTRIBUTES.cache] = cache;
  const cacheTier = said?.[headers.cacheTier];
  if (cacheTier !== undefined) attributes[ATTRIBUTES.cacheTier] = cacheTier;
  const cacheReason = said?.[headers.cacheReason];
  if (cacheReason !== undefined) attributes[ATTRIBUTES.cacheReason] = cacheReason;
  const verdict = headers.contract === "" ? undefined : said?.[headers.contract];
  if (verdict !== undefined) attributes[ATTRIBUTES.contractRules] = contractRules(verdict);
  if (step.type === "reply") {
    attributes[ATTRIBUTES.reason] = step.reply.reason;
    attributes[ATTRIBUTES.httpStatus] = step.reply.status;
    if (step.reply.reason.startsWith("shed.")) attributes[ATTRIBUTES.admission] = "shed";
    return attributes;
  }
  const admission = step.edits?.metadata?.admission;
  if (isRecord(admission) && typeof admission.wait_ms === "number") {
    attributes[ATTRIBUTES.admission] = "admitted";
    attributes[ATTRIBUTES.admissionWaitMs] = admission.wait_ms;
  }
  return attributes;
}

/** What the exchange's blackboard and outcome say once it ended. */
export function outcomeAttributes(exchange: Exchange, outcome: Outcome): Attributes {
  const attributes: Attributes = {
    [ATTRIBUTES.priority]: exchange.priority,
    [ATTRIBUTES.tenant]: exchange.tenant,
    [ATTRIBUTES.answeredBy]: outcome.answeredBy,
  };
  const optional: Readonly<Record<string, AttributeValue | undefined>> = {
    [ATTRIBUTES.httpStatus]: outcome.status,
    [ATTRIBUTES.reason]: outcome.reason,
    [ATTRIBUTES.tier]: exchange.tier,
    [ATTRIBUTES.cost]: exchange.cost,
    [ATTRIBUTES.promptTokensEstimate]: exchange.promptTokens,
    [ATTRIBUTES.predictedLatencyMs]: exchange.predictedLatencyMs,
    [ATTRIBUTES.outputTokens]: exchange.completionTokens,
    [ATTRIBUTES.inputTokens]: exchange.inputTokens,
    [ATTRIBUTES.requestModel]: exchange.requestModel,
    [ATTRIBUTES.contract]: exchange.contract,
    [ATTRIBUTES.modelVersion]: exchange.modelVersion,
    [ATTRIBUTES.upstreamLatencyMs]: outcome.upstreamLatencyMs,
    [ATTRIBUTES.generationMs]: outcome.generationMs,
    [ATTRIBUTES.streamed]: outcome.streamed,
    [ATTRIBUTES.cancelled]: outcome.cancelled || undefined,
  };
  for (const [key, value] of Object.entries(optional)) if (value !== undefined) attributes[key] = value;
  return attributes;
}

/** Exchanges the `alwaysSample` setting can keep, by what their outcome says. */
export function alwaysSampledKind(exchange: Exchange, outcome: Outcome): "shed" | "contract_violation" | undefined {
  if (outcome.answeredBy === "guard" && outcome.reason?.startsWith("shed.") === true) return "shed";
  if (exchange.contract === "violated" || outcome.reason === "contract.violated") return "contract_violation";
  return undefined;
}
