// The output-contract stage: checks the response of every bound route against its contract
// before the client sees it. Under "enforce" a violating body is replaced by a problem+json
// reply; under "shadow" it passes with an x-guard-contract header. Either way the verdict is
// counted per contract and model version, and left on the exchange for the cache stage.
import { Counter, Histogram } from "prom-client";
import { type BodyReason, decodeBody } from "../../contracts/body.js";
import type { CompiledContracts } from "../../contracts/compile.js";
import type { ContractsSection, RouteContract } from "../../contracts/config.js";
import { type CheckResult, Contract } from "../../contracts/contract.js";
import { normaliseFieldPath, verdictHeader } from "../../contracts/labels.js";
import { type Payload, stringAt } from "../../contracts/payload.js";
import { BoundedLabel } from "../../metrics/labels.js";
import { answerFormatFor } from "../answers.js";
import { createDecisionLog, type DecisionLog } from "../decisions.js";
import { NOT_JSON, parseJsonBody } from "../json-body.js";
import { type ResponseStream, responseStream } from "../response-shape.js";
import {
  type ChunkStep,
  CONTINUE,
  type Edits,
  type Exchange,
  type ResponseInfo,
  type Stage,
  type StageConfig,
  type StageDeps,
  type StageRun,
  type Step,
} from "../types.js";
import { unverifiableAnswer, unverifiableStreamEvent, violatedAnswer, violatedStreamEvent } from "./answer.js";
import { RecentViolations } from "./recent.js";
import { StreamCheck, type StreamVerdict } from "./stream-check.js";

export type UnverifiableReason = BodyReason | "body.streaming";

const encoder = new TextEncoder();

/** At response headers: this response's body is of no interest to the contract. */
const NO_BODY: Step = Object.freeze({ type: "continue", responseBody: "none" });

/** Hears every answer the stage judged whole, with its parsed body (the drift monitor profiles them). */
export type ContractObserver = (
  exchange: Exchange,
  contract: Contract,
  modelVersion: string,
  payloads: readonly Payload[],
) => void;

export interface ContractsStageOptions {
  /** Uniform [0, 1) source for sampling; injectable for tests. */
  readonly random?: () => number;
  readonly observe?: ContractObserver;
  /** Where violations are listed for the status page: the guard keeps one across reloads. */
  readonly recent?: RecentViolations;
}

/** Check duration buckets (seconds): a 0.5 KB body takes tens of µs, a 1 MB one tens of ms. */
const DURATION_BUCKETS = [0.00002, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

export interface ContractsStage extends Stage {
  /** The latest violation per contract, model version and rule (status page). */
  readonly recentViolations: RecentViolations;
}

/** What every run of the stage reports to, besides metrics. */
interface Reporting {
  readonly recent: RecentViolations;
  readonly decisions: DecisionLog;
  readonly observe: ContractObserver | undefined;
}

interface Binding {
  readonly route: string;
  readonly settings: RouteContract;
  readonly contract: Contract;
  readonly onUnverifiable: "reject" | "pass";
  readonly fieldLabel: BoundedLabel;
}

interface Metrics {
  readonly checks: Counter<"contract" | "model_version" | "result">;
  readonly violations: Counter<"contract" | "model_version" | "rule" | "field">;
  readonly unverifiable: Counter<"contract" | "reason">;
  readonly duration: Histogram<"contract">;
}

export function createContractsStage(
  config: StageConfig<ContractsSection, RouteContract | undefined>,
  deps: StageDeps,
  compiled: CompiledContracts,
  options: ContractsStageOptions = {},
): ContractsStage {
  const { section } = config;
  const bindings = new Map<string, Binding>();
  for (const [route, settings] of config.routes) {
    if (settings === undefined) continue;
    const message = compiled.messages.get(settings.message);
    // The config cross-check (crossCheckContracts) rejects unknown messages before startup.
    if (message === undefined) throw new Error(`route ${route}: unknown contract message ${settings.message}`);
    const contract = new Contract(
      {
        message,
        payload: settings.payload,
        ...(settings.wrapField === undefined ? {} : { wrapField: settings.wrapField }),
        strictness: settings,
        maxViolations: section.maxViolations,
        maxPayloads: section.maxPayloads,
      },
      compiled.validator,
      compiled.registry,
    );
    bindings.set(route, {
      route,
      settings,
      contract,
      onUnverifiable: settings.unverifiable ?? (settings.action === "enforce" ? "reject" : "pass"),
      fieldLabel: new BoundedLabel(section.maxFieldLabels, 128),
    });
  }
  const metrics: Metrics = {
    checks: new Counter({
      name: "guard_contract_checks_total",
      help: "Responses of contract-bound routes, by verdict: passed, violated, unverifiable, not_sampled, not_applicable.",
      labelNames: ["contract", "model_version", "result"],
      registers: [deps.registry],
    }),
    violations: new Counter({
      name: "guard_contract_violations_total",
      help: "Contract violations by rule id and normalised JSON path (indices as [*]); capped per response at contracts.maxViolations.",
      labelNames: ["contract", "model_version", "rule", "field"],
      registers: [deps.registry],
    }),
    unverifiable: new Counter({
      name: "guard_contract_unverifiable_total",
      help: "Responses that could not be checked, by reason (body.too_large, body.decompression_limit, body.decode_error, body.unsupported_encoding, body.streaming).",
      labelNames: ["contract", "reason"],
      registers: [deps.registry],
    }),
    duration: new Histogram({
      name: "guard_contract_check_seconds",
      help: "Time to decode, parse and check one response body.",
      labelNames: ["contract"],
      buckets: DURATION_BUCKETS,
      registers: [deps.registry],
    }),
  };
  const versions = new BoundedLabel(section.maxModelVersions);
  const random = options.random ?? Math.random;
  const reporting: Reporting = {
    recent: options.recent ?? new RecentViolations(),
    decisions: createDecisionLog(deps.log, deps.now),
    observe: options.observe,
  };

  return {
    name: "contracts",
    recentViolations: reporting.recent,
    start(exchange) {
      const binding = bindings.get(exchange.route.name);
      if (binding === undefined) return undefined;
      return new ContractRun(binding, exchange, section, metrics, versions, deps, random, reporting);
    },
  };
}

type Phase = "waiting" | "checking" | "done";

class ContractRun implements StageRun {
  #phase: Phase = "waiting";
  #requestModel: string | undefined;
  #rawVersion: string | undefined;
  #contentEncoding: string | undefined;
  /** The response is a stream (SSE, or the route's NDJSON): its framing and reading. */
  #streaming: ResponseStream | undefined;
  /** The check of a streamed answer passing chunk by chunk. */
  #stream: StreamCheck | undefined;
  #streamCheckMs = 0;
  /** A streamed answer's verdict header value, for its trailers (its headers went out before it). */
  #streamVerdictHeader: string | undefined;

  constructor(
    private readonly binding: Binding,
    private readonly exchange: Exchange,
    private readonly section: ContractsSection,
    private readonly metrics: Metrics,
    private readonly versions: BoundedLabel,
    private readonly deps: StageDeps,
    private readonly random: () => number,
    private readonly reporting: Reporting,
  ) {}

  onRequestHeaders(): Step {
    const { settings } = this.binding;
    // Sampling is decided before anything is buffered: an unsampled response costs nothing.
    if (settings.sampleRate < 1 && !(this.random() < settings.sampleRate)) {
      this.#finish("not_sampled", this.versions.value(undefined));
      return CONTINUE;
    }
    const wantsRequestModel = settings.models.length > 0 && !this.exchange.request.endOfStream;
    return {
      type: "continue",
      needs: { responseHeaders: true, responseBody: true, ...(wantsRequestModel ? { requestBody: true } : {}) },
    };
  }

  onRequestBody(body: Uint8Array): Step {
    if (this.binding.settings.models.length > 0 && body.byteLength <= this.section.maxBodyBytes) {
      this.#requestModel = modelOf(parseJsonBody(body));
    }
    return CONTINUE;
  }

  async onResponseHeaders(response: ResponseInfo): Promise<Step> {
    if (this.#phase !== "waiting") return CONTINUE;
    this.#rawVersion = clipVersion(response.headers.get(this.binding.settings.modelVersionHeader));
    this.#contentEncoding = response.headers.get("content-encoding");
    this.#streaming = responseStream(response.headers, this.exchange);
    if (response.status < 200 || response.status > 299) {
      // Error bodies of the upstream are not model output: the contract does not apply.
      this.#finish("not_applicable", this.versions.value(this.#rawVersion));
      return NO_BODY;
    }
    // No body will follow: check the empty body now (it is a violation for any contract).
    if (response.endOfStream) return this.#check(new Uint8Array(0));
    const streaming = this.#streaming;
    if (streaming === undefined) return CONTINUE;
    // A stream of a model the binding does not name is none of this contract's business, and is
    // not held up for it.
    if (this.#requestModel !== undefined && !this.#modelApplies(this.#requestModel)) {
      this.#notApplicable();
      return NO_BODY;
    }
    if (this.#contentEncoding !== undefined && this.#contentEncoding.trim().toLowerCase() !== "identity") {
      const step = this.#unverifiable(
        "body.streaming",
        `a ${this.#contentEncoding}-encoded stream cannot be read as it passes`,
      );
      return step.type === "reply" ? step : { ...step, responseBody: "none" };
    }
    const policy = this.binding.settings.stream;
    if (policy === "buffer") return { type: "continue", responseBody: "whole" };
    this.#stream = this.#streamCheck(streaming, policy === "incremental" && this.binding.settings.action === "enforce");
    return { type: "continue", responseBody: "stream" };
  }

  onResponseBody(body: Uint8Array): Promise<Step> | Step {
    if (this.#phase !== "waiting") return CONTINUE;
    if (this.#streaming !== undefined) return this.#checkBufferedStream(this.#streaming, body);
    return this.#check(body);
  }

  onResponseChunk(chunk: Uint8Array, endOfStream: boolean): ChunkStep {
    const stream = this.#stream;
    if (stream === undefined || this.#phase !== "waiting") return { type: "forward", bytes: chunk };
    const started = this.deps.now();
    const { bytes, verdict, withheld } = stream.push(chunk, endOfStream);
    this.#streamCheckMs += this.deps.now() - started;
    if (verdict.kind === "pending") return { type: "forward", bytes };
    // One observation per response, as for a whole body: the time spent on all its chunks.
    this.metrics.duration.observe({ contract: this.binding.contract.name }, this.#streamCheckMs / 1000);
    const cut = this.#streamVerdict(verdict, stream);
    if (cut === undefined)
      return { type: "forward", bytes: withheld.length === 0 ? bytes : Buffer.concat([bytes, withheld]) };
    return { type: "cut", bytes: Buffer.concat([bytes, encoder.encode(cut)]), reason: this.#cutReason(verdict) };
  }

  onResponseTrailers(): Edits | undefined {
    if (this.#streamVerdictHeader === undefined || this.section.header === "") return undefined;
    return { setHeaders: { [this.section.header]: this.#streamVerdictHeader } };
  }

  onEnd(): void {
    // Sampled responses that never reached a verdict (client left, upstream reset) are not counted:
    // they say nothing about the model's output.
    this.#phase = "done";
  }

  #streamCheck(streaming: ResponseStream, enforcing: boolean): StreamCheck {
    return new StreamCheck({
      contract: this.binding.contract,
      framing: streaming.framing,
      format: streaming.format,
      enforcing,
      maxHeldBytes: this.section.maxBodyBytes,
      maxTargets: this.section.maxPayloads,
    });
  }

  /** stream: buffer — the whole event stream, judged like a non-streamed body before any of it is sent. */
  #checkBufferedStream(streaming: ResponseStream, body: Uint8Array): Step {
    this.#phase = "checking";
    const started = this.deps.now();
    const stream = this.#streamCheck(streaming, false);
    const { verdict } = stream.push(body, true);
    this.metrics.duration.observe({ contract: this.binding.contract.name }, (this.deps.now() - started) / 1000);
    if (verdict.kind === "unverifiable") return this.#unverifiable(verdict.reason, verdict.detail);
    if (verdict.kind !== "checked") return this.#notApplicable();
    if (!this.#modelApplies(stream.model ?? this.#requestModel)) return this.#notApplicable();
    this.#versionFrom(stream.document());
    return this.#judged(verdict.result);
  }

  /**
   * A streamed answer's verdict, recorded; returns the in-stream error event when the stream must
   * be cut here (enforcing), undefined when it goes on.
   */
  #streamVerdict(verdict: Exclude<StreamVerdict, { kind: "pending" }>, stream: StreamCheck): string | undefined {
    const { binding } = this;
    if (verdict.kind === "upstream_error") {
      this.#notApplicable();
      return undefined;
    }
    const enforcing = binding.settings.action === "enforce" && binding.settings.stream === "incremental";
    const about = { route: binding.route, contract: binding.contract.name, modelVersion: this.#rawVersion };
    if (verdict.kind === "unverifiable") {
      this.#streamVerdictHeader = unverifiableHeader(verdict.reason);
      const step = this.#unverifiable(verdict.reason, verdict.detail);
      if (step.type !== "reply" || !enforcing) return undefined;
      return unverifiableStreamEvent({ ...about, reason: verdict.reason, detail: verdict.detail }, stream.framing);
    }
    if (!this.#modelApplies(stream.model ?? this.#requestModel)) {
      this.#notApplicable();
      return undefined;
    }
    if (verdict.final) this.#versionFrom(stream.document());
    const { result } = verdict;
    this.#streamVerdictHeader = this.#record(result);
    if (verdict.final) this.#observe(result);
    if (result.valid || !enforcing) return undefined;
    return violatedStreamEvent(
      { ...about, modelVersion: this.#rawVersion, violations: result.violations, total: result.total },
      stream.framing,
    );
  }

  #cutReason(verdict: StreamVerdict): "contract.violated" | "contract.unverifiable" {
    return verdict.kind === "unverifiable" ? "contract.unverifiable" : "contract.violated";
  }

  async #check(body: Uint8Array): Promise<Step> {
    this.#phase = "checking";
    const started = this.deps.now();
    const { binding } = this;
    const decoded = await decodeBody(body, this.#contentEncoding, this.section);
    if (!decoded.ok) return this.#unverifiable(decoded.reason, decoded.detail);
    let parsed: unknown = NOT_JSON;
    let syntaxError = "";
    try {
      parsed = JSON.parse(decoded.text);
    } catch (error) {
      syntaxError = (error as Error).message;
    }
    if (!this.#modelApplies(modelOf(parsed) ?? this.#requestModel)) return this.#notApplicable();
    this.#versionFrom(parsed);
    const result: CheckResult =
      parsed === NOT_JSON ? binding.contract.notJson(syntaxError) : binding.contract.checkValue(parsed);
    this.metrics.duration.observe({ contract: binding.contract.name }, (this.deps.now() - started) / 1000);
    return this.#judged(result);
  }

  /** The model version from the body, when the response headers did not carry it. */
  #versionFrom(body: unknown): void {
    const field = this.binding.settings.modelVersionField;
    if (this.#rawVersion === undefined && field !== undefined) this.#rawVersion = clipVersion(stringAt(body, field));
  }

  /** The verdict on a whole body: a header under shadow (or when it passed), the guard's answer under enforce. */
  #judged(result: CheckResult): Step {
    const header = this.#record(result);
    this.#observe(result);
    if (result.valid || this.binding.settings.action === "shadow") return this.#headerStep(header);
    return {
      type: "reply",
      reply: violatedAnswer({ ...this.#withheld(header), violations: result.violations, total: result.total }),
    };
  }

  /** Counts and reports a result; returns the verdict header's value. */
  #record(result: CheckResult): string {
    const { binding } = this;
    const version = this.versions.value(this.#rawVersion);
    if (result.valid) {
      this.#finish("passed", version);
      return "passed";
    }
    this.#finish("violated", version);
    for (const violation of result.violations) {
      this.metrics.violations.inc({
        contract: binding.contract.name,
        model_version: version,
        rule: violation.rule,
        field: binding.fieldLabel.value(normaliseFieldPath(violation.field)),
      });
    }
    const rules = result.violations.map((violation) => violation.rule);
    this.reporting.recent.record(binding.contract.name, version, result.violations, this.deps.now());
    this.reporting.decisions("contract_violation", this.exchange, binding.route, {
      contract: binding.contract.name,
      modelVersion: version,
      action: binding.settings.action,
      rules: [...new Set(rules)],
      total: result.total,
    });
    return verdictHeader("violated", rules, this.section.headerMaxLength);
  }

  /**
   * A whole answer's payloads, to the observer (after #record, which set the exchange's model
   * version). A body that is not JSON (or a generic stream, judged event by event) has none.
   */
  #observe(result: CheckResult): void {
    if (result.body === undefined) return;
    const version = this.exchange.modelVersion ?? this.versions.value(undefined);
    this.reporting.observe?.(this.exchange, this.binding.contract, version, result.payloads);
  }

  /** True unless the binding names models and this exchange's model is not one of them. */
  #modelApplies(model: string | undefined): boolean {
    const { models } = this.binding.settings;
    return models.length === 0 || (model !== undefined && models.some((pattern) => modelMatches(pattern, model)));
  }

  #notApplicable(): Step {
    this.#finish("not_applicable", this.versions.value(this.#rawVersion));
    return CONTINUE;
  }

  #unverifiable(reason: UnverifiableReason, detail: string): Step {
    const { binding } = this;
    this.metrics.unverifiable.inc({ contract: binding.contract.name, reason });
    this.#finish("unverifiable", this.versions.value(this.#rawVersion));
    const header = unverifiableHeader(reason);
    if (binding.onUnverifiable === "pass") return this.#headerStep(header);
    return { type: "reply", reply: unverifiableAnswer({ ...this.#withheld(header), reason, detail }) };
  }

  /** What every answer replacing this exchange's response says about it. */
  #withheld(verdict: string) {
    const { binding } = this;
    return {
      format: answerFormatFor(this.exchange.request.path),
      status: binding.settings.status,
      route: binding.route,
      contract: binding.contract.name,
      modelVersion: this.#rawVersion,
      headers: this.section.header === "" ? {} : { [this.section.header]: verdict },
    };
  }

  #headerStep(value: string): Step {
    if (this.section.header === "") return CONTINUE;
    return { type: "continue", edits: { setHeaders: { [this.section.header]: value } } };
  }

  #finish(result: "passed" | "violated" | "unverifiable" | "not_sampled" | "not_applicable", version: string): void {
    this.#phase = "done";
    this.exchange.contract = result === "passed" ? "passed" : result === "violated" ? "violated" : "skipped";
    if (this.#rawVersion !== undefined) {
      this.exchange.modelVersion = version;
      this.exchange.statedModelVersion = this.#rawVersion;
    }
    this.metrics.checks.inc({ contract: this.binding.contract.name, model_version: version, result });
  }
}

function unverifiableHeader(reason: UnverifiableReason): string {
  return `unverifiable; reason=${reason}`;
}

function modelOf(body: unknown): string | undefined {
  return stringAt(body, "model");
}

export function modelMatches(pattern: string, model: string): boolean {
  return pattern.endsWith("*") ? model.startsWith(pattern.slice(0, -1)) : model === pattern;
}

function clipVersion(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === "") return undefined;
  return raw.length > 64 ? raw.slice(0, 64) : raw;
}
