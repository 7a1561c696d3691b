// Ollama's streamed answers (`/api/chat` and `/api/generate`, NDJSON, `stream` true unless the
// request says false), read into the document the same request would have had with `stream: false`.
//
// Each line is a JSON object with `model` and `created_at`; chat lines carry `message` (`role`,
// `content` and, for thinking models, `thinking` deltas; `tool_calls` come whole, not in pieces),
// generate lines a `response` delta (and `thinking`). The last line has `done: true`, `done_reason`
// and the counts: `prompt_eval_count` (prompt tokens), `eval_count` (completion tokens), the
// durations and, for generate, `context`. An `error` member is an upstream error (formats.ts).
//
// The document: the members of the latest line (the final one's counts and durations once done),
// with the text assembled: `message: {role, content, thinking?, tool_calls?}` for chat, `response`
// (and `thinking`) for generate. Which one a stream is, its first line with either says.
import {
  type FormatReader,
  isObject,
  type JsonObject,
  MAX_INDEX,
  type ReadingDraft,
  type TextBudget,
  type TokenUsage,
} from "./reading.js";

function count(value: unknown): number | undefined {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

/** Ollama's counts as token usage: prompt_eval_count and eval_count (absent on a cached prompt's count, or before done). */
function ollamaUsage(line: JsonObject): TokenUsage | undefined {
  const prompt = count(line.prompt_eval_count);
  const completion = count(line.eval_count);
  if (prompt === undefined && completion === undefined) return undefined;
  const usage: { promptTokens?: number; completionTokens?: number; totalTokens?: number } = {};
  if (prompt !== undefined) usage.promptTokens = prompt;
  if (completion !== undefined) usage.completionTokens = completion;
  if (prompt !== undefined && completion !== undefined) usage.totalTokens = prompt + completion;
  return usage;
}

/** The streamed text members of chat's `message` and of a generate line. */
const CHAT_TEXT = ["content", "thinking"] as const;
const GENERATE_TEXT = ["response", "thinking"] as const;
/** Members assembled across lines rather than taken from the latest one. */
const STREAMED_MEMBERS: ReadonlySet<string> = new Set(["message", "response", "thinking"]);

export class OllamaReader implements FormatReader {
  readonly #budget: TextBudget;
  #kind: "chat" | "generate" | undefined;
  /** The latest line's members besides the streamed text. */
  #latest: JsonObject = {};
  #role: string | undefined;
  /** Assembled text by member (content, thinking, response). */
  readonly #text = new Map<string, string>();
  readonly #toolCalls: unknown[] = [];

  constructor(budget: TextBudget) {
    this.#budget = budget;
  }

  read(value: unknown, _event: string | undefined, draft: ReadingDraft): void {
    if (!isObject(value)) {
      draft.malformed = "expected an Ollama stream object";
      return;
    }
    const message = value.message;
    this.#kind ??= isObject(message) ? "chat" : typeof value.response === "string" ? "generate" : undefined;
    this.#latest = Object.fromEntries(Object.entries(value).filter(([key]) => !STREAMED_MEMBERS.has(key)));
    if (typeof value.model === "string" && value.model !== "") draft.model = value.model;
    if (this.#kind === "chat" && isObject(message)) this.#readMessage(message, draft);
    if (this.#kind === "generate") for (const member of GENERATE_TEXT) this.#append(member, value[member], draft);
    if (value.done === true) {
      draft.done = true;
      const usage = ollamaUsage(value);
      if (usage !== undefined) draft.usage = usage;
    }
  }

  #readMessage(message: JsonObject, draft: ReadingDraft): void {
    if (typeof message.role === "string" && message.role !== "") this.#role = message.role;
    for (const member of CHAT_TEXT) this.#append(member, message[member], draft);
    if (!Array.isArray(message.tool_calls)) return;
    // Bounded like choices and tool calls elsewhere: each is kept to the stream's end.
    for (const call of message.tool_calls) if (this.#toolCalls.length <= MAX_INDEX) this.#toolCalls.push(call);
  }

  /** A non-empty text delta: reported always, kept while the budget lasts. */
  #append(member: string, text: unknown, draft: ReadingDraft): void {
    if (typeof text !== "string" || text === "") return;
    draft.deltas.push({ target: this.#target(member), text });
    if (this.#budget.take(text)) this.#text.set(member, (this.#text.get(member) ?? "") + text);
  }

  #target(member: string): string {
    return this.#kind === "chat" ? `message.${member}` : member;
  }

  document(): unknown {
    const document: Record<string, unknown> = { ...this.#latest };
    if (this.#kind === "generate") {
      document.response = this.#text.get("response") ?? "";
      if (this.#text.has("thinking")) document.thinking = this.#text.get("thinking");
    } else {
      const message: Record<string, unknown> = {
        role: this.#role ?? "assistant",
        content: this.#text.get("content") ?? "",
      };
      if (this.#text.has("thinking")) message.thinking = this.#text.get("thinking");
      if (this.#toolCalls.length > 0) message.tool_calls = [...this.#toolCalls];
      document.message = message;
    }
    document.done ??= false;
    return document;
  }

  targets(): string[] {
    const members = this.#kind === "generate" ? GENERATE_TEXT : CHAT_TEXT;
    // The main text is a target even when empty; thinking only when the model thought aloud.
    return members
      .filter((member, index) => index === 0 || this.#text.has(member))
      .map((member) => this.#target(member));
  }
}
