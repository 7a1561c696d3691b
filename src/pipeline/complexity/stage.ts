// The complexity stage: scores each request of a route that enables it, picks a tier (Envoy
// re-selects the route on the tier header, so heavy requests reach their own cluster), sets an
// upstream timeout that fits the predicted latency, and learns from completed requests: the route's
// output size and latency, from the completion tokens the upstream reported, never from the output
// it only expected. The usage stage sets exchange.completionTokens as the answer passes it (its
// response hooks), so every stage's onEnd sees them, this one's included although it runs first.
// Later stages read exchange.cost / outputPricing / tier / predictedLatencyMs (admission uses them).
import { answerFormatFor, guardAnswer } from "../answers.js";
import { createDecisionLog, type DecisionLog } from "../decisions.js";
import type { Edits, Exchange, Outcome, Stage, StageDeps, StageRun, Step } from "../types.js";
import { CONTINUE } from "../types.js";
import type { ComplexityConfig } from "./config.js";
import { costOf, tierFor, timeoutFor } from "./cost.js";
import { type Estimate, type EstimateOptions, estimateBody, estimateBySize } from "./estimate.js";
import { createTokenCounter } from "./exactTokenizer.js";
import type { Features } from "./features.js";
import { type ComplexityMetrics, createComplexityMetrics } from "./metrics.js";
import { LatencyModel } from "./model.js";
import { OutputEstimate } from "./output.js";

/** Triton's binary tensor extension: the body's first N bytes are JSON, the rest raw tensors. */
const JSON_HEADER_LENGTH = "inference-header-content-length";
/** Dynamic-metadata key (under the guard's namespace) for access logs and later filters. */
const METADATA_KEY = "complexity";
/** A model name longer than any real one is a client's junk: traces keep its start. */
const MAX_MODEL_CHARS = 256;

interface RouteState {
  readonly name: string;
  readonly settings: ComplexityConfig;
  readonly model: LatencyModel;
  readonly output: OutputEstimate;
  readonly estimateOptions: EstimateOptions;
}

export interface ComplexityStage extends Stage {
  /** A route's latency model (predictions outside a request, admin endpoints); undefined when disabled. */
  model(route: string): LatencyModel | undefined;
  /** A route's learned output size; undefined when disabled. */
  output(route: string): OutputEstimate | undefined;
  /** Settles once every configured exact tokenizer is loaded or has failed to load. */
  warmUp(): Promise<void>;
}

function parseLength(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,15}$/.test(value)) return undefined;
  return Number(value);
}

class ComplexityRun implements StageRun {
  #scored: { readonly features: Features; readonly predictedMs: number } | undefined;

  constructor(
    readonly exchange: Exchange,
    readonly route: RouteState,
    readonly metrics: ComplexityMetrics,
    readonly decisions: DecisionLog,
  ) {}

  onRequestHeaders(): Step {
    const { request } = this.exchange;
    const needs = { responseHeaders: true } as const;
    if (request.endOfStream) return { type: "continue", edits: this.#decide(estimateBySize(0)), needs };
    const announced = parseLength(request.headers.get("content-length"));
    if (announced !== undefined && announced > this.route.settings.maxBodyBytes) {
      // No need to buffer a body that would only be measured: its length is already known.
      return { type: "continue", edits: this.#decide(estimateBySize(announced, "too_large")), needs };
    }
    this.exchange.costAwaitsBody = true;
    return { type: "continue", needs: { requestBody: true, responseHeaders: true } };
  }

  onRequestBody(body: Uint8Array): Step {
    if (this.#scored !== undefined) return CONTINUE;
    const { request } = this.exchange;
    const jsonLength = parseLength(request.headers.get(JSON_HEADER_LENGTH));
    const estimate = estimateBody(request.path, body, this.route.estimateOptions, jsonLength);
    if (estimate.model !== undefined) this.exchange.requestModel = estimate.model.slice(0, MAX_MODEL_CHARS);
    const edits = this.#decide(estimate);
    const window = this.route.settings.contextWindow;
    const prompt = this.exchange.promptTokens ?? 0;
    if (window === undefined || estimate.fallback !== undefined || prompt <= window) return { type: "continue", edits };
    const reply = guardAnswer("request.context_length_exceeded", {
      format: answerFormatFor(request.path),
      detail: `about ${prompt} prompt tokens estimated, the model's context window is ${window}`,
      extensions: { route: this.route.name, context_window: window, estimated_prompt_tokens: prompt },
    });
    return { type: "reply", reply };
  }

  onEnd(outcome: Outcome): void {
    const scored = this.#scored;
    if (scored === undefined || outcome.upstreamLatencyMs === undefined) return;
    if (outcome.answeredBy !== "upstream" || outcome.cancelled) return;
    const { features } = scored;
    const route = this.route.name;
    // Errors and throttling answer early (or at the timeout we set): they say nothing about cost.
    if (outcome.status === undefined || outcome.status < 200 || outcome.status > 299) {
      this.metrics.modelUpdates.inc({ route, result: "skipped_status" });
      return;
    }
    const reported = this.exchange.completionTokens;
    if (features.output.generations > 0) this.#learnOutput(features, reported);
    // A streamed answer's headers arrive with its first token: only its end shows the whole job.
    const observed = outcome.generationMs ?? (features.stream ? undefined : outcome.upstreamLatencyMs);
    if (observed === undefined) {
      this.metrics.modelUpdates.inc({ route, result: "skipped_streamed" });
      return;
    }
    // Latency follows what a generation produced, not what was expected of it, when the upstream
    // says. Without a report the fit takes the request as it was predicted (its expected output):
    // the latency is real, and those predictions stay calibrated to the routes' real answers.
    const produced = reported === undefined ? features : { ...features, outputTokens: reported };
    this.metrics.latencyRatio.observe({ route }, observed / scored.predictedMs);
    this.metrics.modelUpdates.inc({ route, result: this.route.model.update(produced, observed) });
  }

  #learnOutput(features: Features, reported: number | undefined): void {
    const route = this.route.name;
    if (reported === undefined) {
      this.metrics.outputUpdates.inc({ route, result: "skipped_no_usage" });
      return;
    }
    if (features.outputTokens > 0)
      this.metrics.outputRatio.observe({ route, tier: this.exchange.tier ?? "none" }, reported / features.outputTokens);
    if (this.route.settings.output.learn)
      this.metrics.outputUpdates.inc({ route, result: this.route.output.learn(features.output, reported) });
  }

  #decide(estimate: Estimate): Edits {
    const { features } = estimate;
    const { settings, name: route } = this.route;
    const cost = costOf(features, settings.weights);
    const tier = tierFor(cost, settings.tiers);
    const predictedMs = this.route.model.predict(features);
    this.#scored = { features, predictedMs };
    this.exchange.cost = cost;
    this.exchange.outputPricing = { expectedTokens: features.outputTokens, costPerToken: settings.weights.outputToken };
    this.exchange.tier = tier;
    // Only fitted predictions are published: admission calibrates one floor for this source, and
    // the prior (tuned for LLM latencies, ~100× off for a fast model) would set that floor so low
    // that the fitted predictions later read as a 100× slow-down and shed nearly everything until
    // the floor decays (minutes). Until then admission uses its own baseline.
    if (this.route.model.fitted) this.exchange.predictedLatencyMs = predictedMs;

    this.metrics.cost.observe({ route, tier }, cost);
    this.metrics.tierDecisions.inc({ route, tier });
    // Requests staying on the first (default) tier are the normal case; only a re-route is a decision.
    if (tier !== settings.tiers[0]?.name) {
      this.decisions("reroute", this.exchange, route, {
        tier,
        cost: Math.round(cost),
        predictedLatencyMs: Math.round(predictedMs),
      });
    }
    const promptTokens = features.inputTokens + features.toolTokens + features.imageTokens;
    this.exchange.promptTokens = promptTokens;
    if (estimate.fallback !== undefined) this.metrics.fallbacks.inc({ route, reason: estimate.fallback });
    else if (features.shape !== "kserve" && features.shape !== "other")
      this.metrics.inputTokens.observe({ route, tier }, promptTokens);

    const setHeaders: Record<string, string> = { [settings.tierHeader]: tier };
    // Envoy's upstream timeout spans the whole response: a healthy stream that generates for longer
    // than predicted must not be cut by it, so a streamed request gets the ceiling, and a stalled
    // stream is ended by the route's idle_timeout instead (envoy/envoy.yaml).
    if (settings.timeout.header !== "")
      setHeaders[settings.timeout.header] = String(
        features.stream ? settings.timeout.ceilingMs : timeoutFor(predictedMs, settings.timeout),
      );
    return {
      setHeaders,
      clearRouteCache: true,
      metadata: {
        [METADATA_KEY]: {
          cost: Math.round(cost),
          tier,
          inputTokens: promptTokens,
          predictedLatencyMs: Math.round(predictedMs),
          ...(estimate.fallback === undefined ? {} : { fallback: estimate.fallback }),
        },
      },
    };
  }
}

/** `config`: route name → its complexity section. */
export function createComplexityStage(config: ReadonlyMap<string, ComplexityConfig>, deps: StageDeps): ComplexityStage {
  const routes = new Map<string, RouteState>();
  const loading: Promise<void>[] = [];
  for (const [name, settings] of config) {
    if (!settings.enabled) continue;
    const counter = createTokenCounter(settings.tokenizer, deps.log);
    loading.push(counter.ready);
    const output = new OutputEstimate(settings.output, settings.defaultMaxOutputTokens);
    routes.set(name, {
      name,
      settings,
      model: new LatencyModel(settings.model),
      output,
      estimateOptions: {
        maxBodyBytes: settings.maxBodyBytes,
        maxDepth: settings.maxDepth,
        expectedOutput: (ask) => output.expected(ask),
        countTokens: counter.count,
      },
    });
  }
  const metrics = createComplexityMetrics(deps.registry, routes);
  const decisions = createDecisionLog(deps.log, deps.now);
  return {
    name: "complexity",
    warmUp: () => Promise.all(loading).then(() => undefined),
    model: (route) => routes.get(route)?.model,
    output: (route) => routes.get(route)?.output,
    start(exchange) {
      const route = routes.get(exchange.route.name);
      return route === undefined ? undefined : new ComplexityRun(exchange, route, metrics, decisions);
    },
  };
}
