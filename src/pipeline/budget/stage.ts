// The budget stage: per-tenant requests and tokens per minute on the routes that enable it. A
// request over its tenant's budget is answered 429 at once, with the rate-limit headers OpenAI's
// clients already read; every answer on the route carries them, as OpenAI's do. Counted: each
// request when admitted here, its prompt tokens (the complexity stage's estimate) then, and its
// completion tokens when the exchange ends (as reported, else as estimated).
import { Counter, type Registry } from "prom-client";
import { BoundedLabel } from "../../metrics/labels.js";
import { answerFormatFor, guardAnswer } from "../answers.js";
import type { Exchange, Outcome, Stage, StageDeps, StageRun, Step } from "../types.js";
import type { RouteBudgetConfig } from "./config.js";
import { BudgetWindows, type Usage } from "./window.js";

export interface BudgetStageDeps extends StageDeps {
  /** Wall-clock ms: budget minutes start on the minute, as everyone's do. Date.now unless a test sets it. */
  readonly wallClock?: () => number;
}

export interface BudgetStage extends Stage {
  readonly windows: BudgetWindows;
}

/** Tenants named in metric labels before the rest count as "other". */
const TENANT_LABELS = 10;
/** Tenant ids are hashes: a prefix tells them apart on a dashboard. */
const TENANT_LABEL_LENGTH = 12;
const ANONYMOUS = "anonymous";

interface BudgetMetrics {
  readonly requests: Counter<"route" | "tenant" | "result">;
  readonly tokens: Counter<"route" | "tenant" | "kind">;
  readonly tenantLabel: BoundedLabel;
}

function createBudgetMetrics(registry: Registry): BudgetMetrics {
  const registers = [registry];
  return {
    requests: new Counter({
      name: "guard_budget_requests_total",
      help: "Requests on routes with a tenant budget, by route, tenant (the first 10 seen by a 12-character prefix of their hash; the rest are other) and result: admitted, over_requests, over_tokens",
      labelNames: ["route", "tenant", "result"],
      registers,
    }),
    tokens: new Counter({
      name: "guard_budget_tokens_total",
      help: "Tokens counted against tenant budgets, by route, tenant (as guard_budget_requests_total) and kind: prompt (estimated), completion (reported), completion_estimate (no usage reported)",
      labelNames: ["route", "tenant", "kind"],
      registers,
    }),
    tenantLabel: new BoundedLabel(TENANT_LABELS, TENANT_LABEL_LENGTH),
  };
}

/** OpenAI's reset format: "20ms", "1s", "6m0s". */
export function resetDuration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const seconds = Math.ceil(ms / 1_000);
  return seconds < 60 ? `${seconds}s` : `${Math.floor(seconds / 60)}m${seconds % 60}s`;
}

/** The rate-limit headers for a tenant's use after this request (remaining never below 0). */
export function rateLimitHeaders(budget: RouteBudgetConfig, usage: Usage): Record<string, string> {
  const headers: Record<string, string> = {};
  const reset = resetDuration(usage.resetMs);
  if (budget.requestsPerMinute !== undefined) {
    headers["x-ratelimit-limit-requests"] = String(budget.requestsPerMinute);
    headers["x-ratelimit-remaining-requests"] = String(
      Math.max(0, Math.floor(budget.requestsPerMinute - usage.requests)),
    );
    headers["x-ratelimit-reset-requests"] = reset;
  }
  if (budget.tokensPerMinute !== undefined) {
    headers["x-ratelimit-limit-tokens"] = String(budget.tokensPerMinute);
    headers["x-ratelimit-remaining-tokens"] = String(Math.max(0, Math.floor(budget.tokensPerMinute - usage.tokens)));
    headers["x-ratelimit-reset-tokens"] = reset;
  }
  return headers;
}

export function createBudgetStage(config: ReadonlyMap<string, RouteBudgetConfig>, deps: BudgetStageDeps): BudgetStage {
  const windows = new BudgetWindows(deps.wallClock ?? Date.now);
  const metrics = createBudgetMetrics(deps.registry);
  return {
    name: "budget",
    windows,
    start(exchange: Exchange): StageRun | undefined {
      const budget = config.get(exchange.route.name);
      if (budget === undefined || !budget.enabled) return undefined;
      return new BudgetRun(exchange, budget, windows, metrics);
    },
  };
}

class BudgetRun implements StageRun {
  readonly #key: string;
  readonly #tenantLabel: string;
  #counted = false;

  constructor(
    readonly exchange: Exchange,
    readonly budget: RouteBudgetConfig,
    readonly windows: BudgetWindows,
    readonly metrics: BudgetMetrics,
  ) {
    const tenant = exchange.tenant ?? ANONYMOUS;
    this.#key = `${budget.pool ?? exchange.route.name}\0${tenant}`;
    this.#tenantLabel = metrics.tenantLabel.value(tenant);
  }

  onRequestHeaders(): Step {
    // Prompt tokens are known once the complexity stage has read the body.
    if (this.exchange.costAwaitsBody === true && !this.exchange.request.endOfStream)
      return { type: "continue", needs: { requestBody: true, responseHeaders: true } };
    return this.#check();
  }

  onRequestBody(): Step {
    return this.#check();
  }

  onResponseHeaders(): Step {
    if (!this.#counted) return { type: "continue" };
    return { type: "continue", edits: { setHeaders: rateLimitHeaders(this.budget, this.windows.usage(this.#key)) } };
  }

  onEnd(outcome: Outcome): void {
    if (!this.#counted) return;
    const reported = this.exchange.completionTokens;
    // A guard reply (a violated contract) or a failed call generated nothing for the tenant to pay.
    const estimated = outcome.answeredBy === "upstream" ? this.exchange.outputPricing?.expectedTokens : undefined;
    const tokens = reported ?? estimated;
    if (tokens === undefined || tokens <= 0) return;
    this.windows.add(this.#key, 0, tokens);
    const kind = reported === undefined ? "completion_estimate" : "completion";
    this.metrics.tokens.inc({ route: this.exchange.route.name, tenant: this.#tenantLabel, kind }, tokens);
  }

  #check(): Step {
    if (this.#counted) return { type: "continue" };
    const route = this.exchange.route.name;
    const usage = this.windows.usage(this.#key);
    const { requestsPerMinute, tokensPerMinute } = this.budget;
    const over =
      requestsPerMinute !== undefined && usage.requests + 1 > requestsPerMinute
        ? ({ code: "budget.requests", limit: requestsPerMinute, result: "over_requests" } as const)
        : tokensPerMinute !== undefined && usage.tokens >= tokensPerMinute
          ? ({ code: "budget.tokens", limit: tokensPerMinute, result: "over_tokens" } as const)
          : undefined;
    if (over !== undefined) {
      this.metrics.requests.inc({ route, tenant: this.#tenantLabel, result: over.result });
      const retryAfterSeconds = Math.max(1, Math.ceil(usage.resetMs / 1_000));
      return {
        type: "reply",
        reply: guardAnswer(over.code, {
          format: answerFormatFor(this.exchange.request.path),
          detail: `the tenant's budget of ${over.limit} ${over.code === "budget.requests" ? "requests" : "tokens"} per minute is used up; retry after ${retryAfterSeconds} s`,
          retryAfterSeconds,
          headers: rateLimitHeaders(this.budget, usage),
          extensions: { limit: over.limit, retry_after_seconds: retryAfterSeconds },
        }),
      };
    }
    const promptTokens = this.exchange.promptTokens ?? 0;
    this.windows.add(this.#key, 1, promptTokens);
    this.#counted = true;
    this.metrics.requests.inc({ route, tenant: this.#tenantLabel, result: "admitted" });
    if (promptTokens > 0) this.metrics.tokens.inc({ route, tenant: this.#tenantLabel, kind: "prompt" }, promptTokens);
    return { type: "continue", needs: { responseHeaders: true } };
  }
}
