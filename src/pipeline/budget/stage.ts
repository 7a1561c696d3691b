// The budget stage: per-tenant requests and tokens per minute on the routes that enable it. A
// request over its tenant's budget is answered 429 at once, with the rate-limit headers OpenAI's
// clients already read; every answer on the route carries them, as OpenAI's do. Counted: each
// request when admitted here, its prompt tokens (the complexity stage's estimate) then, and its
// completion tokens when the exchange ends (as reported, else as estimated).
import { Counter, Gauge, type Registry } from "prom-client";
import { TopLabel } from "../../metrics/labels.js";
import { realTimers } from "../../util/timers.js";
import { answerFormatFor, guardAnswer, retryAfterSeconds } from "../answers.js";
import type { Exchange, Outcome, Stage, StageConfig, StageDeps, StageRun, Step } from "../types.js";
import type { BudgetConfig, RouteBudgetConfig } from "./config.js";
import { BudgetLedger, type Verdict } from "./ledger.js";
import type { Usage } from "./window.js";

export interface BudgetStageDeps extends StageDeps {
  /** Wall-clock ms: budget minutes start on the minute, on every sidecar alike. Date.now unless a test sets it. */
  readonly wallClock?: () => number;
}

export interface BudgetStage extends Stage {
  readonly ledger: BudgetLedger;
}

/** Tenants named in metric labels (the heaviest in the last minute); the rest count as "other". */
const TENANT_LABELS = 10;
/** Tenant ids are hashes: a prefix tells them apart on a dashboard. */
const TENANT_LABEL_LENGTH = 12;

interface BudgetMetrics {
  readonly requests: Counter<"route" | "tenant" | "result" | "source">;
  readonly tokens: Counter<"route" | "tenant" | "kind">;
  readonly tenantLabel: TopLabel;
}

function createBudgetMetrics(registry: Registry, ledger: BudgetLedger): BudgetMetrics {
  const registers = [registry];
  return {
    requests: new Counter({
      name: "guard_budget_requests_total",
      help: "Requests on routes with a tenant budget, by route, tenant (the 10 heaviest of the last minute, by tokens and requests, as a 12-character prefix of their hash; the rest are other), result (admitted, over_requests, over_tokens) and source of the decision (shared: Redis, local: this sidecar alone)",
      labelNames: ["route", "tenant", "result", "source"],
      registers,
    }),
    tokens: new Counter({
      name: "guard_budget_tokens_total",
      help: "Tokens counted against tenant budgets, by route, tenant (as guard_budget_requests_total) and kind: prompt (estimated), completion (reported), completion_estimate (no usage reported)",
      labelNames: ["route", "tenant", "kind"],
      registers,
    }),
    tenantLabel: new TopLabel(TENANT_LABELS, TENANT_LABEL_LENGTH, (key) => {
      const usage = ledger.windows.usage(key);
      return usage.tokens + usage.requests;
    }),
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

export function createBudgetStage(
  config: StageConfig<BudgetConfig, RouteBudgetConfig>,
  deps: BudgetStageDeps,
): BudgetStage {
  const registers = [deps.registry];
  const redisUp = new Gauge({
    name: "guard_budget_redis_up",
    help: "1 while the budgets' shared Redis answers (or none is configured), 0 while checks are local",
    registers,
  });
  redisUp.set(1);
  const redisErrors = new Counter({
    name: "guard_budget_redis_errors_total",
    help: "Failed or timed-out calls to the budgets' shared Redis, by op (connect, admit, tokens)",
    labelNames: ["op"],
    registers,
  });
  const ledger = new BudgetLedger(config.section, {
    now: deps.now,
    wallClock: deps.wallClock ?? Date.now,
    log: deps.log,
    timers: realTimers,
    redisEvents: {
      failure: (op) => redisErrors.inc({ op }),
      health: (up) => redisUp.set(up ? 1 : 0),
    },
  });
  const metrics = createBudgetMetrics(deps.registry, ledger);
  return {
    name: "budget",
    ledger,
    start(exchange: Exchange): StageRun | undefined {
      const budget = config.routes.get(exchange.route.name);
      if (budget === undefined || !budget.enabled) return undefined;
      return new BudgetRun(exchange, budget, ledger, metrics);
    },
    close: () => ledger.close(),
  };
}

class BudgetRun implements StageRun {
  readonly #key: string;
  readonly #tenantLabel: string;
  /** The tenant's use once this request was counted; undefined until then. */
  #counted: Usage | undefined;
  #checked = false;

  constructor(
    readonly exchange: Exchange,
    readonly budget: RouteBudgetConfig,
    readonly ledger: BudgetLedger,
    readonly metrics: BudgetMetrics,
  ) {
    const tenant = exchange.tenant;
    this.#key = `${budget.pool ?? exchange.route.name}:${tenant}`;
    this.#tenantLabel = metrics.tenantLabel.value(this.#key, tenant);
  }

  onRequestHeaders(): Step | Promise<Step> {
    // Prompt tokens are known once the complexity stage has read the body.
    if (this.exchange.costAwaitsBody === true && !this.exchange.request.endOfStream)
      return { type: "continue", needs: { requestBody: true, responseHeaders: true } };
    return this.#check();
  }

  onRequestBody(): Step | Promise<Step> {
    return this.#check();
  }

  onResponseHeaders(): Step {
    if (this.#counted === undefined) return { type: "continue" };
    return { type: "continue", edits: { setHeaders: rateLimitHeaders(this.budget, this.#counted) } };
  }

  onEnd(outcome: Outcome): void {
    if (this.#counted === undefined) return;
    const reported = this.exchange.completionTokens;
    // A guard reply (a violated contract) or a failed call generated nothing for the tenant to pay.
    const estimated = outcome.answeredBy === "upstream" ? this.exchange.outputPricing?.expectedTokens : undefined;
    const tokens = reported ?? estimated;
    if (tokens === undefined || tokens <= 0) return;
    this.ledger.addTokens(this.#key, tokens);
    const kind = reported === undefined ? "completion_estimate" : "completion";
    this.metrics.tokens.inc({ route: this.exchange.route.name, tenant: this.#tenantLabel, kind }, tokens);
  }

  async #check(): Promise<Step> {
    if (this.#checked) return { type: "continue" };
    this.#checked = true;
    const promptTokens = this.exchange.promptTokens ?? 0;
    const verdict = await this.ledger.admit(this.#key, this.budget, promptTokens);
    const route = this.exchange.route.name;
    const labels = { route, tenant: this.#tenantLabel, source: verdict.source };
    if (verdict.over !== undefined) {
      this.metrics.requests.inc({ ...labels, result: `over_${verdict.over}` });
      return { type: "reply", reply: this.#overReply(verdict) };
    }
    this.#counted = verdict.usage;
    this.metrics.requests.inc({ ...labels, result: "admitted" });
    if (promptTokens > 0) this.metrics.tokens.inc({ route, tenant: this.#tenantLabel, kind: "prompt" }, promptTokens);
    return { type: "continue", needs: { responseHeaders: true } };
  }

  #overReply({ over, usage }: Verdict) {
    const code = over === "requests" ? "budget.requests" : "budget.tokens";
    const limit = (over === "requests" ? this.budget.requestsPerMinute : this.budget.tokensPerMinute) ?? 0;
    // At least a second: the sliding minute forgets the previous bucket gradually, so a retry much
    // sooner would mostly meet the same answer.
    const retryAfterMs = Math.max(1_000, usage.resetMs);
    const seconds = retryAfterSeconds(retryAfterMs);
    return guardAnswer(code, {
      format: answerFormatFor(this.exchange.request.path),
      detail: `the tenant's budget of ${limit} ${over} per minute is used up; retry after ${seconds} s`,
      retryAfterMs,
      headers: rateLimitHeaders(this.budget, usage),
      extensions: { limit, retry_after_seconds: seconds },
    });
  }
}
