// What the demo model answers, per task and per variant. "v1" is the conforming model; the breaks
// are named ways a new model version silently breaks its output contract, and the drifts ways it
// silently changes while every answer still conforms (docs/drift.md).
// The contract tests walk this catalogue, so each break here must be caught by a contract in proto/.
//
// A task's output is its contract payload; demoResponseBody() puts it where the example
// bindings (DEMO_BINDINGS) look for it: sentiment and eta are the whole body, embedding is
// data[0].embedding of an embeddings response, chat_structured is the content of an OpenAI-style
// chat completion (a string output is the content verbatim, anything else is JSON-encoded).
import type { JsonValue } from "../pipeline/types.js";

export interface TaskOutputs {
  /** Output of the conforming model for a request input (deterministic for a given input). */
  readonly conforming: (input: JsonValue) => JsonValue;
  /** Named breaking variants: a new model version that changed something it should not have. */
  readonly breaks: Readonly<Record<string, (input: JsonValue) => JsonValue>>;
  /**
   * Named variants that still conform, at the edges of the contract (bounds, longest lists,
   * non-ASCII text): traffic a contract must never flag.
   */
  readonly conformingEdges: Readonly<Record<string, (input: JsonValue) => JsonValue>>;
  /**
   * Named variants whose every answer conforms but whose answers, taken together, moved: a version
   * a contract passes and only the drift monitor flags (collapse, label shift, longer answers).
   */
  readonly drifts: Readonly<Record<string, (input: JsonValue) => JsonValue>>;
}

/** Small deterministic hash of the input, so outputs vary with it but are reproducible. */
function seedOf(input: JsonValue): number {
  const text = JSON.stringify(input) ?? "";
  let hash = 2166136261;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 16777619);
  return hash >>> 0;
}

function textOf(input: JsonValue): string {
  if (typeof input === "string") return input;
  if (typeof input === "object" && input !== null && !Array.isArray(input) && typeof input.text === "string")
    return input.text;
  return "";
}

function sentiment(input: JsonValue): { label: string; score: number } {
  const negative = /\b(bad|awful|broken|late|refund)\b/i.test(textOf(input));
  const score =
    Math.round((negative ? 0.05 + (seedOf(input) % 40) / 100 : 0.55 + (seedOf(input) % 45) / 100) * 100) / 100;
  return { label: negative ? "NEGATIVE" : "POSITIVE", score };
}

function eta(input: JsonValue): { order_id: string; eta_minutes: number; status: string; computed_at: string } {
  // The ETA is at least 25 minutes so that a model answering in seconds lands above a day.
  return {
    order_id: `ord_${(seedOf(input) % 1_000_000).toString(36)}`,
    eta_minutes: 25 + (seedOf(input) % 35),
    status: "ON_TIME",
    computed_at: new Date().toISOString(),
  };
}

const DIMENSION = 8;

function embedding(input: JsonValue, dimension = DIMENSION): number[] {
  const seed = seedOf(input);
  return Array.from({ length: dimension }, (_, i) => Math.round(Math.sin(seed + i) * 1e6) / 1e6);
}

function triage(input: JsonValue): {
  category: string;
  priority: number;
  tags: string[];
  summary: string;
  needs_human: boolean;
} {
  const text = textOf(input);
  const billing = /\b(invoice|charge|refund|bill)/i.test(text);
  return {
    category: billing ? "billing" : "technical",
    priority: 2 + (seedOf(input) % 4),
    tags: billing ? ["billing", "refund"] : ["bug"],
    summary: text === "" ? "Customer contacted support." : text.slice(0, 200),
    needs_human: false,
  };
}

const minutesAgo = (minutes: number): string => new Date(Date.now() - minutes * 60_000).toISOString();

export const TASKS: Readonly<Record<string, TaskOutputs>> = {
  sentiment: {
    conforming: sentiment,
    breaks: {
      score_rescaled: (input) => ({ ...sentiment(input), score: Math.round(sentiment(input).score * 100) }),
      label_respelled: (input) => ({ ...sentiment(input), label: sentiment(input).label.toLowerCase() }),
      new_label: (input) => ({ ...sentiment(input), label: "MIXED" }),
      label_renamed: (input) => {
        const { label, score } = sentiment(input);
        return { sentiment: label, score };
      },
      score_as_string: (input) => ({ ...sentiment(input), score: String(sentiment(input).score) }),
      score_null: (input) => ({ ...sentiment(input), score: null }),
      score_nan: (input) => ({ ...sentiment(input), score: "NaN" }),
      wrapped_in_object: (input) => ({ result: sentiment(input) }),
      extra_field: (input) => ({ ...sentiment(input), explanation: "The customer sounds happy." }),
      missing_score: (input) => ({ label: sentiment(input).label }),
      empty_label: (input) => ({ ...sentiment(input), label: "" }),
      negative_score: (input) => ({ ...sentiment(input), score: -0.2 }),
      label_contradicts_score: (input) => ({ label: "POSITIVE", score: 0.1 + (seedOf(input) % 30) / 100 }),
    },
    conformingEdges: {
      score_zero: () => ({ label: "NEGATIVE", score: 0 }),
      score_one: () => ({ label: "POSITIVE", score: 1 }),
      score_half: () => ({ label: "POSITIVE", score: 0.5 }),
      neutral: () => ({ score: 0.4999, label: "NEUTRAL" }),
    },
    drifts: {
      // Every score collapsed to one value per label whatever the input: in range, and useless to rank by.
      score_collapsed: (input) => {
        const { label } = sentiment(input);
        return { label, score: label === "POSITIVE" ? 0.98 : 0.02 };
      },
      // Six answers in ten are NEUTRAL, which the conforming model never says.
      label_shift: (input) =>
        seedOf(input) % 10 < 6 ? { label: "NEUTRAL", score: 0.45 + (seedOf(input) % 5) / 100 } : sentiment(input),
    },
  },
  eta: {
    conforming: eta,
    breaks: {
      stale_timestamp: (input) => ({ ...eta(input), computed_at: minutesAgo(120) }),
      future_timestamp: (input) => ({ ...eta(input), computed_at: minutesAgo(-60) }),
      eta_in_seconds: (input) => ({ ...eta(input), eta_minutes: eta(input).eta_minutes * 60 }),
      eta_renamed: (input) => {
        const { eta_minutes, ...rest } = eta(input);
        return { ...rest, eta_mins: eta_minutes };
      },
      new_status: (input) => ({ ...eta(input), status: "LOST_IN_TRANSIT" }),
      timestamp_as_epoch: (input) => ({ ...eta(input), computed_at: Math.floor(Date.now() / 1000) }),
      fractional_minutes: (input) => ({ ...eta(input), eta_minutes: eta(input).eta_minutes + 0.5 }),
      delayed_without_reason: (input) => ({ ...eta(input), status: "DELAYED" }),
      empty_order_id: (input) => ({ ...eta(input), order_id: "" }),
      status_as_number: (input) => ({ ...eta(input), status: 1 }),
    },
    conformingEdges: {
      eta_zero: (input) => ({ ...eta(input), eta_minutes: 0 }),
      delayed_a_day: (input) => ({
        ...eta(input),
        eta_minutes: 1440,
        status: "DELAYED",
        delay_reason: "Sturm über Köln — 暴風 🌩",
      }),
      offset_timestamp: (input) => ({ ...eta(input), computed_at: eta(input).computed_at.replace("Z", "+00:00") }),
    },
    drifts: {
      // Every ETA a quarter of an hour later than v1 says for the same order: in range (at most
      // 25 + 34 + 15 minutes), so only a comparison with v1's answer to the same request shows it.
      eta_later: (input) => ({ ...eta(input), eta_minutes: eta(input).eta_minutes + 15 }),
    },
  },
  embedding: {
    conforming: (input) => embedding(input),
    breaks: {
      dimension_changed: (input) => embedding(input, 12),
      dimension_shrunk: (input) => embedding(input, 4),
      nan_component: (input) => embedding(input).map((value, i) => (i === 3 ? "NaN" : value)),
      null_component: (input) => embedding(input).map((value, i) => (i === 0 ? null : value)),
      unnormalised: (input) => embedding(input).map((value) => value * 4),
      wrapped_in_object: (input) => ({ vector: embedding(input) }),
      base64_encoded: (input) => Buffer.from(new Float32Array(embedding(input)).buffer).toString("base64"),
    },
    conformingEdges: {
      unit_bounds: () => [1, -1, 0, 0.5, -0.5, 1e-7, -0, 1],
      all_zero: () => Array.from({ length: DIMENSION }, () => 0),
    },
    drifts: {},
  },
  chat_structured: {
    conforming: triage,
    breaks: {
      key_renamed: (input) => {
        const { priority, ...rest } = triage(input);
        return { ...rest, urgency: priority };
      },
      tags_too_long: (input) => ({ ...triage(input), tags: ["a", "b", "c", "d", "e", "f", "g"] }),
      prose_not_json: (input) => `Sure! The ticket is about ${triage(input).category}.`,
      category_respelled: (input) => ({ ...triage(input), category: "Billing" }),
      priority_as_string: (input) => ({ ...triage(input), priority: String(triage(input).priority) }),
      // The mid-stream break: "summary": "" is the 4th of 5 keys (after category, priority and tags,
      // all conforming; before needs_human), so a streamed answer delivers conforming fields first and
      // an incremental checker can cut the stream at the violating value, before the object ends.
      empty_summary: (input) => ({ ...triage(input), summary: "" }),
      urgent_without_human: (input) => ({ ...triage(input), priority: 1, needs_human: false }),
      priority_infinity: (input) => ({ ...triage(input), priority: "Infinity" }),
    },
    conformingEdges: {
      urgent_with_human: (input) => ({ ...triage(input), priority: 1, needs_human: true }),
      longest: () => ({
        category: "account",
        priority: 5,
        // Length rules count code points: 32 emoji (64 UTF-16 units) is the longest allowed tag.
        tags: ["a", "b", "c", "ü".repeat(32), "🚚".repeat(32)],
        summary: "Ünïcödé — 配達はいつですか？ ".repeat(20).slice(0, 280),
        needs_human: false,
      }),
    },
    drifts: {
      // Three times the summary, within the 280-character limit.
      longer_summaries: (input) => {
        const answer = triage(input);
        return { ...answer, summary: [answer.summary, answer.summary, answer.summary].join(" ").slice(0, 280) };
      },
    },
  },
};

/**
 * An eta answer with its eta_minutes moved by `offset`, kept in the contract's range (0 to a day):
 * the demo's non-determinism (settings.etaJitterMinutes). Anything else is returned as it is.
 */
export function jitteredEta(output: JsonValue, offset: number): JsonValue {
  if (typeof output !== "object" || output === null || Array.isArray(output)) return output;
  const minutes = output.eta_minutes;
  if (typeof minutes !== "number") return output;
  return { ...output, eta_minutes: Math.min(1440, Math.max(0, minutes + offset)) };
}

/** Returns undefined for an unknown task or variant (the demo model answers 404 then). */
export function renderOutput(task: string, variant: string, input: JsonValue): JsonValue | undefined {
  const outputs = TASKS[task];
  if (outputs === undefined) return undefined;
  if (variant === "v1") return outputs.conforming(input);
  return (outputs.breaks[variant] ?? outputs.conformingEdges[variant] ?? outputs.drifts[variant])?.(input);
}

/** How each task's contract is bound (the routes[].contract keys of the demo config). */
export const DEMO_BINDINGS: Readonly<
  Record<string, { readonly message: string; readonly payload: string; readonly wrapField?: string }>
> = {
  sentiment: { message: "demo.v1.Sentiment", payload: "$" },
  eta: { message: "demo.v1.DeliveryEta", payload: "$" },
  embedding: { message: "demo.v1.Embedding", payload: "data[*].embedding", wrapField: "values" },
  chat_structured: { message: "demo.v1.TicketTriage", payload: "choices[*].message.content<json>" },
};

/** The response body the demo model sends for a task's output (see the header comment). */
export function demoResponseBody(task: string, output: JsonValue, model = "demo-model"): JsonValue {
  switch (task) {
    case "embedding":
      return { object: "list", model, data: [{ object: "embedding", index: 0, embedding: output }] };
    case "chat_structured":
      return {
        id: "chatcmpl-demo",
        object: "chat.completion",
        model,
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: typeof output === "string" ? output : JSON.stringify(output) },
            finish_reason: "stop",
          },
        ],
      };
    default:
      return output;
  }
}
