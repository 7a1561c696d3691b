// OpenAI's chat completions (`chat.completion.chunk`) and legacy completions (`text_completion`)
// streams, read into the document the same request would have had without `stream: true`.
//
// Tolerated, as real servers differ: a missing `usage` (llama.cpp), usage on every chunk (vLLM's
// continuous_usage_stats: the last one wins), `"content": null` or "" deltas, a choice without
// `index` (its position in the chunk is used), chunks without `id`/`created` (null in the document),
// Azure's leading `choices: []` chunk with empty id and model. The first id and created seen are
// kept, and the last model (and system_fingerprint).
import {
  type FormatReader,
  isObject,
  type JsonObject,
  MAX_INDEX,
  memberIndex,
  type ReadingDraft,
  type TextBudget,
  tokenUsage,
} from "./reading.js";

/** What both chunk kinds carry around their choices: id, created, model, fingerprint, usage. */
abstract class ChoicesReader<Choice> implements FormatReader {
  readonly #budget: TextBudget;
  #id: unknown = null;
  #created: unknown = null;
  #model: string | undefined;
  #fingerprint: string | undefined;
  #usage: JsonObject | undefined;
  protected readonly choices = new Map<number, Choice>();

  constructor(budget: TextBudget) {
    this.#budget = budget;
  }

  protected abstract readonly object: string;
  protected abstract newChoice(): Choice;
  protected abstract readChoice(index: number, choice: JsonObject, state: Choice, draft: ReadingDraft): void;
  protected abstract choiceDocument(index: number, state: Choice): JsonObject;
  protected abstract choiceTargets(index: number, state: Choice): string[];

  read(value: unknown, _event: string | undefined, draft: ReadingDraft): void {
    if (!isObject(value)) {
      draft.malformed = `expected a ${this.object} chunk object`;
      return;
    }
    const choices = value.choices;
    if (!Array.isArray(choices) && !(choices === undefined && isObject(value.usage))) {
      draft.malformed = `expected a ${this.object} chunk: no choices array`;
      return;
    }
    // Empty values are placeholders (Azure's first chunk, with prompt_filter_results: id "", created 0, model "").
    if (this.#id === null && typeof value.id === "string" && value.id !== "") this.#id = value.id;
    if (this.#created === null && typeof value.created === "number" && value.created > 0) this.#created = value.created;
    if (typeof value.model === "string" && value.model !== "") {
      this.#model = value.model;
      draft.model = value.model;
    }
    if (typeof value.system_fingerprint === "string" && value.system_fingerprint !== "")
      this.#fingerprint = value.system_fingerprint;
    const usage = tokenUsage(value.usage);
    if (usage !== undefined) {
      this.#usage = value.usage as JsonObject;
      draft.usage = usage;
    }
    if (choices === undefined) return;
    choices.forEach((choice: unknown, position) => {
      if (!isObject(choice)) return;
      const index = memberIndex(choice.index, position);
      if (index === undefined) {
        draft.malformed = `choice index beyond ${MAX_INDEX}`;
        return;
      }
      let state = this.choices.get(index);
      if (state === undefined) {
        state = this.newChoice();
        this.choices.set(index, state);
      }
      this.readChoice(index, choice, state, draft);
    });
  }

  /** Appends a non-empty delta's text: reported always, kept while the budget lasts. */
  protected append(draft: ReadingDraft, target: string, kept: string, text: string): string {
    draft.deltas.push({ target, text });
    return this.#budget.take(text) ? kept + text : kept;
  }

  document(): unknown {
    const document: Record<string, unknown> = {
      id: this.#id,
      object: this.object,
      created: this.#created,
      model: this.#model ?? null,
    };
    if (this.#fingerprint !== undefined) document.system_fingerprint = this.#fingerprint;
    document.choices = this.#sorted().map(([index, state]) => this.choiceDocument(index, state));
    if (this.#usage !== undefined) document.usage = this.#usage;
    return document;
  }

  targets(): string[] {
    return this.#sorted().flatMap(([index, state]) => this.choiceTargets(index, state));
  }

  #sorted(): [number, Choice][] {
    return [...this.choices].sort(([a], [b]) => a - b);
  }
}

interface ToolCall {
  id?: string;
  type?: string;
  name?: string;
  arguments: string;
}

interface ChatChoice {
  role: string | undefined;
  content: string;
  refusal: string | undefined;
  readonly toolCalls: Map<number, ToolCall>;
  finishReason: string | null;
}

/** `chat.completion.chunk` events → a `chat.completion`. */
export class ChatReader extends ChoicesReader<ChatChoice> {
  protected readonly object = "chat.completion";

  protected newChoice(): ChatChoice {
    return { role: undefined, content: "", refusal: undefined, toolCalls: new Map(), finishReason: null };
  }

  protected readChoice(index: number, choice: JsonObject, state: ChatChoice, draft: ReadingDraft): void {
    const delta = choice.delta;
    if (isObject(delta)) {
      if (typeof delta.role === "string" && delta.role !== "") state.role = delta.role;
      if (typeof delta.content === "string" && delta.content !== "")
        state.content = this.append(draft, `choices[${index}].message.content`, state.content, delta.content);
      if (typeof delta.refusal === "string" && delta.refusal !== "")
        state.refusal = this.append(draft, `choices[${index}].message.refusal`, state.refusal ?? "", delta.refusal);
      if (Array.isArray(delta.tool_calls)) {
        delta.tool_calls.forEach((call: unknown, position) => {
          if (!isObject(call)) return;
          const at = memberIndex(call.index, position);
          if (at === undefined) draft.malformed = `tool call index beyond ${MAX_INDEX}`;
          else this.#readToolCall(index, call, at, state, draft);
        });
      }
    }
    if (typeof choice.finish_reason === "string") {
      state.finishReason = choice.finish_reason;
      draft.completed.push(...this.choiceTargets(index, state));
    }
  }

  #readToolCall(index: number, call: JsonObject, position: number, state: ChatChoice, draft: ReadingDraft): void {
    let toolCall = state.toolCalls.get(position);
    if (toolCall === undefined) {
      toolCall = { arguments: "" };
      state.toolCalls.set(position, toolCall);
    }
    if (typeof call.id === "string" && call.id !== "") toolCall.id ??= call.id;
    if (typeof call.type === "string" && call.type !== "") toolCall.type ??= call.type;
    const fn = call.function;
    if (!isObject(fn)) return;
    if (typeof fn.name === "string" && fn.name !== "") toolCall.name ??= fn.name;
    if (typeof fn.arguments === "string" && fn.arguments !== "") {
      const target = `choices[${index}].message.tool_calls[${position}].function.arguments`;
      toolCall.arguments = this.append(draft, target, toolCall.arguments, fn.arguments);
    }
  }

  protected choiceDocument(index: number, state: ChatChoice): JsonObject {
    // As without streaming: content is null when the answer is tool calls or a refusal only.
    const noContent = state.content === "" && (state.toolCalls.size > 0 || state.refusal !== undefined);
    const message: Record<string, unknown> = {
      role: state.role ?? "assistant",
      content: noContent ? null : state.content,
    };
    if (state.refusal !== undefined) message.refusal = state.refusal;
    if (state.toolCalls.size > 0) {
      message.tool_calls = [...state.toolCalls]
        .sort(([a], [b]) => a - b)
        .map(([, call]) => ({
          id: call.id ?? null,
          type: call.type ?? "function",
          function: { name: call.name ?? null, arguments: call.arguments },
        }));
    }
    return { index, message, finish_reason: state.finishReason };
  }

  protected choiceTargets(index: number, state: ChatChoice): string[] {
    const targets = [`choices[${index}].message.content`];
    if (state.refusal !== undefined) targets.push(`choices[${index}].message.refusal`);
    for (const position of [...state.toolCalls.keys()].sort((a, b) => a - b))
      targets.push(`choices[${index}].message.tool_calls[${position}].function.arguments`);
    return targets;
  }
}

interface TextChoice {
  text: string;
  finishReason: string | null;
}

/** Legacy `/v1/completions` (`text_completion`) chunks → a `text_completion`. */
export class CompletionsReader extends ChoicesReader<TextChoice> {
  protected readonly object = "text_completion";

  protected newChoice(): TextChoice {
    return { text: "", finishReason: null };
  }

  protected readChoice(index: number, choice: JsonObject, state: TextChoice, draft: ReadingDraft): void {
    if (typeof choice.text === "string" && choice.text !== "")
      state.text = this.append(draft, `choices[${index}].text`, state.text, choice.text);
    if (typeof choice.finish_reason === "string") {
      state.finishReason = choice.finish_reason;
      draft.completed.push(`choices[${index}].text`);
    }
  }

  protected choiceDocument(index: number, state: TextChoice): JsonObject {
    return { index, text: state.text, finish_reason: state.finishReason };
  }

  protected choiceTargets(index: number): string[] {
    return [`choices[${index}].text`];
  }
}
