// Features of OpenAI-style request bodies: chat completions, completions, embeddings, responses.
// Bodies come from clients, so every field is checked for its type; an extractor returns
// undefined when the body is not the shape it claims, and the caller scores it by size.
import {
  emptyFeatures,
  type Features,
  IMAGE_TOKENS_HIGH_DETAIL,
  IMAGE_TOKENS_LOW_DETAIL,
  MAX_OUTPUT_TOKENS,
  type OutputAsk,
} from "./features.js";

/**
 * Counts (or estimates) the tokens of `text`, reading about `budgetChars` characters of it at
 * most: the request's scan budget is shared among its texts.
 */
export type CountTokens = (text: string, budgetChars: number) => number;
/** Output tokens a request is expected to produce, all generations (the route's estimate, see output.ts). */
export type ExpectedOutput = (ask: OutputAsk) => number;
type JsonObject = Record<string, unknown>;

/** Role markers and separators every chat message carries in the model's prompt format. */
const MESSAGE_FRAMING_TOKENS = 4;
/** The assistant header the model is primed with before it answers. */
const REPLY_PRIMING_TOKENS = 3;
/** A client may ask for any number; this keeps one request from producing an unbounded cost. */
const MAX_CHOICES = 128;
/**
 * Characters of text scanned per request. A request's texts share it in proportion to their
 * length (each at least SCAN_FLOOR_CHARS), so scoring a 1 MB request costs about as much as
 * scoring a 16 KB one, and a long conversation of short turns is sampled like one long prompt.
 */
const REQUEST_SCAN_CHARS = 16_384;
const SCAN_FLOOR_CHARS = 128;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Total length of the strings inside a value (attachments scored by size, e.g. base64 audio). */
export function stringBytes(value: unknown): number {
  if (typeof value === "string") return value.length;
  if (typeof value !== "object" || value === null) return 0;
  let total = 0;
  for (const child of Object.values(value)) total += stringBytes(child);
  return total;
}

/** Accumulates what a body asks for; texts are counted at the end, once their total is known. */
class Tally {
  inputTokens = 0;
  images = 0;
  imageTokens = 0;
  otherBytes = 0;
  readonly #inputTexts: string[] = [];
  readonly #toolTexts: string[] = [];
  #textChars = 0;

  constructor(readonly count: CountTokens) {}

  text(value: unknown): void {
    if (typeof value !== "string" || value.length === 0) return;
    this.#inputTexts.push(value);
    this.#textChars += value.length;
  }

  image(detail: unknown): void {
    this.images++;
    this.imageTokens += detail === "low" ? IMAGE_TOKENS_LOW_DETAIL : IMAGE_TOKENS_HIGH_DETAIL;
  }

  /** Message content: a string or an array of typed parts (chat and responses part names). */
  content(content: unknown): void {
    if (typeof content === "string") {
      this.text(content);
      return;
    }
    if (!Array.isArray(content)) return;
    for (const part of content) {
      if (typeof part === "string") this.text(part);
      else if (!isObject(part)) continue;
      else if (typeof part.text === "string") this.text(part.text);
      else if (typeof part.refusal === "string") this.text(part.refusal);
      else if (part.type === "image_url") this.image(isObject(part.image_url) ? part.image_url.detail : undefined);
      else if (part.type === "input_image") this.image(part.detail);
      else this.otherBytes += stringBytes(part);
    }
  }

  /** Definitions the provider renders into the prompt (tools, functions, JSON schemas). */
  definitions(value: unknown): void {
    if (value === undefined || value === null) return;
    const text = JSON.stringify(value);
    this.#toolTexts.push(text);
    this.#textChars += text.length;
  }

  #tokens(texts: readonly string[]): number {
    const share = this.#textChars <= REQUEST_SCAN_CHARS ? 1 : REQUEST_SCAN_CHARS / this.#textChars;
    let tokens = 0;
    for (const text of texts) tokens += this.count(text, Math.max(SCAN_FLOOR_CHARS, Math.ceil(text.length * share)));
    return tokens;
  }

  features(shape: Features["shape"], output: OutputAsk, outputTokens: number, stream: boolean): Features {
    return {
      ...emptyFeatures(shape),
      inputTokens: this.inputTokens + this.#tokens(this.#inputTexts),
      toolTokens: this.#tokens(this.#toolTexts),
      images: this.images,
      imageTokens: this.imageTokens,
      otherBytes: this.otherBytes,
      outputTokens,
      output,
      stream,
    };
  }
}

function firstCount(body: JsonObject, keys: readonly string[], max: number): number | undefined {
  for (const key of keys) {
    const value = body[key];
    if (typeof value === "number" && Number.isFinite(value) && value >= 0) return Math.min(Math.floor(value), max);
  }
  return undefined;
}

function choices(body: JsonObject, keys: readonly string[]): number {
  let most = 1;
  for (const key of keys) most = Math.max(most, firstCount(body, [key], MAX_CHOICES) ?? 1);
  return most;
}

function outputAsk(body: JsonObject, limitKeys: readonly string[], generations: number): OutputAsk {
  const limit = firstCount(body, limitKeys, MAX_OUTPUT_TOKENS);
  return limit === undefined ? { generations } : { generations, limit };
}

function isTokenArray(value: unknown[]): boolean {
  return value.length > 0 && typeof value[0] === "number";
}

/** Prompts given as a string, strings, token ids or lists of token ids; returns the prompt count. */
function prompts(tally: Tally, value: unknown): number {
  if (typeof value === "string") {
    tally.text(value);
    return 1;
  }
  if (!Array.isArray(value)) return 0;
  if (isTokenArray(value)) {
    tally.inputTokens += value.length;
    return 1;
  }
  for (const item of value) {
    if (typeof item === "string") tally.text(item);
    else if (Array.isArray(item)) tally.inputTokens += item.length;
  }
  return value.length;
}

export function extractChat(body: JsonObject, count: CountTokens, expected: ExpectedOutput): Features | undefined {
  const { messages } = body;
  if (!Array.isArray(messages)) return undefined;
  const tally = new Tally(count);
  for (const message of messages) {
    if (!isObject(message)) continue;
    tally.inputTokens += MESSAGE_FRAMING_TOKENS;
    tally.content(message.content);
    tally.text(message.name);
    if (Array.isArray(message.tool_calls)) {
      for (const call of message.tool_calls) {
        if (!isObject(call) || !isObject(call.function)) continue;
        tally.text(call.function.name);
        tally.text(call.function.arguments);
      }
    }
  }
  tally.inputTokens += REPLY_PRIMING_TOKENS;
  tally.definitions(body.tools);
  tally.definitions(body.functions);
  if (isObject(body.response_format)) tally.definitions(body.response_format.json_schema);
  const output = outputAsk(body, ["max_completion_tokens", "max_tokens"], choices(body, ["n"]));
  return tally.features("chat", output, expected(output), body.stream === true);
}

export function extractCompletions(
  body: JsonObject,
  count: CountTokens,
  expected: ExpectedOutput,
): Features | undefined {
  const tally = new Tally(count);
  const promptCount = prompts(tally, body.prompt);
  if (promptCount === 0) return undefined;
  tally.text(body.suffix);
  // best_of candidates are generated server-side even though only n are returned.
  const output = outputAsk(body, ["max_tokens"], choices(body, ["n", "best_of"]) * promptCount);
  return tally.features("completions", output, expected(output), body.stream === true);
}

export function extractEmbeddings(body: JsonObject, count: CountTokens): Features | undefined {
  const tally = new Tally(count);
  if (prompts(tally, body.input) === 0) return undefined;
  return tally.features("embeddings", { generations: 0 }, 0, false);
}

function responseItem(tally: Tally, item: unknown): void {
  if (typeof item === "string") {
    tally.text(item);
    return;
  }
  if (!isObject(item)) return;
  if (item.type === "function_call") {
    tally.text(item.name);
    tally.text(item.arguments);
  } else if (item.type === "function_call_output") {
    tally.content(item.output);
  } else if (item.type === undefined || item.type === "message") {
    tally.inputTokens += MESSAGE_FRAMING_TOKENS;
    tally.content(item.content);
  } else {
    // Reasoning items, tool results of built-in tools...: charge their text as it is.
    tally.text(JSON.stringify(item));
  }
}

export function extractResponses(body: JsonObject, count: CountTokens, expected: ExpectedOutput): Features | undefined {
  const { input } = body;
  if (typeof input !== "string" && !Array.isArray(input)) return undefined;
  const tally = new Tally(count);
  tally.text(body.instructions);
  if (typeof input === "string") tally.text(input);
  else for (const item of input) responseItem(tally, item);
  tally.inputTokens += REPLY_PRIMING_TOKENS;
  tally.definitions(body.tools);
  const format = isObject(body.text) ? body.text.format : undefined;
  if (isObject(format) && format.type === "json_schema") tally.definitions(format.schema);
  const output = outputAsk(body, ["max_output_tokens"], 1);
  return tally.features("responses", output, expected(output), body.stream === true);
}
