// What the demo model answers on each inference API, as pure functions of the parsed request.
// Timing, failures and the wire live in server.ts; keeping these pure lets the shapes be tested
// without sockets and keeps every answer reproducible for the cache and contract tests.
import type { JsonValue } from "../pipeline/types.js";
import { seededRandom } from "../util/seeded-random.js";
import { estimateTokens, replyText, sha256Hex, textVector } from "./determinism.js";
import { renderOutput } from "./outputs.js";

type JsonObject = { [key: string]: JsonValue };

export type ModelRoute =
  | { readonly kind: "chat" }
  | { readonly kind: "completions" }
  | { readonly kind: "responses" }
  | { readonly kind: "ollama_chat" }
  | { readonly kind: "embeddings" }
  | { readonly kind: "predict"; readonly task: string }
  | { readonly kind: "infer"; readonly model: string };

/**
 * How a stream's JSON events go on the wire: "done" — one `data:` line each, closed by
 * `data: [DONE]` (chat and completions, as OpenAI and vLLM send them); "typed" — `event: <type>`
 * (the event's own `type` member) before each `data:` line, and no closing sentinel: the Responses
 * API's last event (response.completed) ends the stream; "ndjson" — one JSON line each
 * (application/x-ndjson, as Ollama streams), the last one (`done: true`) ends the stream.
 */
export type StreamFraming = "done" | "typed" | "ndjson";

/** A JSON reply, or a stream of JSON events (Server-Sent Events or NDJSON). */
export type Answer = { readonly kind: "json"; readonly status: number; readonly body: JsonValue } | StreamAnswer;

export interface StreamAnswer {
  readonly kind: "stream";
  readonly framing: StreamFraming;
  readonly events: readonly JsonValue[];
}

export interface AnswerContext {
  readonly variant: string;
  readonly version: string;
  /** Task named by the x-demo-task header: forces structured output. */
  readonly task: string | undefined;
  /** Wrap structured output in a ```json fence, as chat models often do. */
  readonly fence: boolean;
  /** Unique per response, so a cached answer is told apart from a fresh one. */
  readonly responseId: string;
  readonly createdSeconds: number;
}

const DEFAULT_MAX_TOKENS = 16;
/** Generation is simulated, but building megabytes of text would still cost the shared CPU. */
const MAX_GENERATED_TOKENS = 1024;
const MAX_CHOICES = 16;
const STREAM_PIECE_CHARS = 12;
/** Structured (JSON) output streams in tokenizer-sized pieces of this many characters (code points). */
const TOKEN_PIECE_MIN = 3;
const TOKEN_PIECE_MAX = 8;

export function matchModelRoute(path: string): ModelRoute | undefined {
  if (path === "/v1/chat/completions") return { kind: "chat" };
  if (path === "/v1/completions") return { kind: "completions" };
  if (path === "/v1/responses") return { kind: "responses" };
  if (path === "/v1/embeddings") return { kind: "embeddings" };
  if (path === "/api/chat") return { kind: "ollama_chat" };
  const predict = /^\/v1\/predict\/([^/]+)$/.exec(path);
  if (predict?.[1] !== undefined) {
    const task = decodeSegment(predict[1]);
    return task === undefined ? undefined : { kind: "predict", task };
  }
  const infer = /^\/v2\/models\/([^/]+)(?:\/versions\/[^/]+)?\/infer$/.exec(path);
  if (infer?.[1] !== undefined) {
    const model = decodeSegment(infer[1]);
    return model === undefined ? undefined : { kind: "infer", model };
  }
  return undefined;
}

export function answer(route: ModelRoute, body: JsonValue, context: AnswerContext): Answer {
  switch (route.kind) {
    case "chat":
      return answerChat(body, context);
    case "completions":
      return answerCompletions(body, context);
    case "responses":
      return answerResponses(body, context);
    case "ollama_chat":
      return answerOllamaChat(body, context);
    case "embeddings":
      return answerEmbeddings(body, context);
    case "predict":
      return answerPredict(route.task, body, context);
    case "infer":
      return answerInfer(route.model, body, context);
  }
}

/** The output tokens a generation request asks for at most (decode cost), 0 when it names none. */
export function requestedTokens(body: JsonValue): number {
  if (!isObject(body)) return 0;
  const asked = body.max_tokens ?? body.max_completion_tokens ?? body.max_output_tokens ?? ollamaNumPredict(body);
  return typeof asked === "number" && Number.isFinite(asked) && asked > 0 ? Math.min(asked, MAX_GENERATED_TOKENS) : 0;
}

export function errorAnswer(status: number, message: string, type: string): Answer {
  return { kind: "json", status, body: { error: { message, type } } };
}

interface GenerationRequest {
  readonly model: string;
  readonly choices: number;
  readonly maxTokens: number;
  readonly stream: boolean;
  readonly includeUsage: boolean;
}

/** Fields chat and completions share; a string is the 400 message for the first bad one. */
function readGeneration(body: JsonObject): GenerationRequest | string {
  const n = body.n ?? 1;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > MAX_CHOICES) {
    return `n must be an integer from 1 to ${MAX_CHOICES}`;
  }
  const decoding = readDecoding(body, body.max_tokens ?? body.max_completion_tokens, "max_tokens");
  if (typeof decoding === "string") return decoding;
  const streamOptions = body.stream_options;
  return {
    ...decoding,
    choices: n,
    includeUsage: isObject(streamOptions) && streamOptions.include_usage === true,
  };
}

/** The Responses API's fields: one output, max_output_tokens, usage always in the closing event. */
function readResponsesRequest(body: JsonObject): GenerationRequest | string {
  const decoding = readDecoding(body, body.max_output_tokens, "max_output_tokens");
  if (typeof decoding === "string") return decoding;
  return { ...decoding, choices: 1, includeUsage: false };
}

/** Ollama's output token budget: options.num_predict. */
function ollamaNumPredict(body: JsonObject): JsonValue | undefined {
  return isObject(body.options) ? body.options.num_predict : undefined;
}

/** Ollama's /api/chat fields: one output, options.num_predict, and a stream unless `stream: false`. */
function readOllamaRequest(body: JsonObject): GenerationRequest | string {
  const decoding = readDecoding(body, ollamaNumPredict(body), "options.num_predict", true);
  if (typeof decoding === "string") return decoding;
  return { ...decoding, choices: 1, includeUsage: false };
}

/**
 * Model, output token budget (`limit`, named `limitName` in the 400 message) and stream (`streamByDefault`
 * when the request does not say), as every generation API asks for them.
 */
function readDecoding(
  body: JsonObject,
  limit: JsonValue | undefined,
  limitName: string,
  streamByDefault = false,
): Pick<GenerationRequest, "model" | "maxTokens" | "stream"> | string {
  const maxTokens = limit ?? DEFAULT_MAX_TOKENS;
  if (typeof maxTokens !== "number" || !Number.isInteger(maxTokens) || maxTokens < 1) {
    return `${limitName} must be a positive integer`;
  }
  const stream = body.stream ?? streamByDefault;
  if (typeof stream !== "boolean") return "stream must be a boolean";
  const model = body.model;
  return {
    model: typeof model === "string" ? model : "demo",
    maxTokens: Math.min(maxTokens, MAX_GENERATED_TOKENS),
    stream,
  };
}

/**
 * The name a json_schema structured-output request gives its schema: response_format.json_schema.name
 * on chat and completions, text.format.name on the Responses API.
 */
function jsonSchemaName(body: JsonObject, api: "chat" | "responses"): string | undefined {
  const format = api === "responses" ? (isObject(body.text) ? body.text.format : undefined) : body.response_format;
  if (!isObject(format) || format.type !== "json_schema") return undefined;
  const name = api === "responses" ? format.name : isObject(format.json_schema) ? format.json_schema.name : undefined;
  return typeof name === "string" ? name : undefined;
}

/**
 * Which catalogue task this generation request wants as structured output: the x-demo-task header,
 * else a json_schema format whose name is a task the catalogue knows.
 */
function structuredTask(schema: string | undefined, body: JsonObject, context: AnswerContext): string | undefined {
  if (context.task !== undefined) return context.task;
  if (schema === undefined) return undefined;
  return renderOutput(schema, "v1", body) === undefined ? undefined : schema;
}

interface Generation {
  readonly request: GenerationRequest;
  /** One text per choice per prompt. */
  readonly texts: string[];
  /** How a text is cut into stream events: token-sized pieces for structured output, else fixed-size. */
  readonly split: (text: string) => string[];
}

/**
 * The generation parameters and texts, or the error answer: 400 for bad parameters (`request` is
 * then the message), 404 for an unknown structured task/variant. `schema` is the json_schema name
 * the request gives, if any.
 */
function generate(
  request: GenerationRequest | string,
  schema: string | undefined,
  body: JsonObject,
  prompts: readonly string[],
  context: AnswerContext,
): Generation | Answer {
  if (typeof request === "string") return badRequest(request);
  const task = structuredTask(schema, body, context);
  if (task !== undefined) {
    const output = renderOutput(task, context.variant, body);
    if (output === undefined) return unknownOutput(task, context.variant);
    // A string output (prose instead of JSON) is the content itself, as demoResponseBody sends it.
    const json = typeof output === "string" ? output : JSON.stringify(output);
    const content = context.fence ? `\n\`\`\`json\n${json}\n\`\`\`\n` : json;
    return {
      request,
      texts: prompts.flatMap(() => Array.from({ length: request.choices }, () => content)),
      split: tokenPieces,
    };
  }
  const texts = prompts.flatMap((prompt) =>
    Array.from({ length: request.choices }, (_, index) => replyText(prompt, index, request.maxTokens)),
  );
  return { request, texts, split: pieces };
}

function usage(promptTokens: number, texts: readonly string[]): JsonObject {
  const completionTokens = texts.reduce((sum, text) => sum + estimateTokens(text), 0);
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

function answerChat(body: JsonValue, context: AnswerContext): Answer {
  if (!isObject(body)) return badRequest("request body must be a JSON object");
  const prompt = chatPrompt(body.messages);
  if (prompt === undefined) return badRequest("messages must be a non-empty array of {role, content}");
  const generation = generate(readGeneration(body), jsonSchemaName(body, "chat"), body, [prompt], context);
  if ("kind" in generation) return generation;
  const { request, texts, split } = generation;
  const promptTokens = estimateTokens(prompt);
  const header = { id: context.responseId, created: context.createdSeconds, model: request.model };
  if (!request.stream) {
    return {
      kind: "json",
      status: 200,
      body: {
        ...header,
        object: "chat.completion",
        choices: texts.map((content, index) => ({
          index,
          message: { role: "assistant", content },
          logprobs: null,
          finish_reason: "stop",
        })),
        usage: usage(promptTokens, texts),
      },
    };
  }
  // With include_usage, OpenAI gives every chunk but the closing usage one a null usage; without it, none.
  const chunk = (choice: JsonObject): JsonValue => ({
    ...header,
    object: "chat.completion.chunk",
    choices: [choice],
    ...(request.includeUsage ? { usage: null } : {}),
  });
  const events = texts.flatMap((content, index) => [
    chunk({ index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }),
    ...split(content).map((piece) => chunk({ index, delta: { content: piece }, logprobs: null, finish_reason: null })),
    chunk({ index, delta: {}, logprobs: null, finish_reason: "stop" }),
  ]);
  if (request.includeUsage) {
    events.push({ ...header, object: "chat.completion.chunk", choices: [], usage: usage(promptTokens, texts) });
  }
  return { kind: "stream", framing: "done", events };
}

function answerCompletions(body: JsonValue, context: AnswerContext): Answer {
  if (!isObject(body)) return badRequest("request body must be a JSON object");
  const prompts = stringOrStrings(body.prompt);
  if (prompts === undefined) return badRequest("prompt must be a string or a non-empty array of strings");
  const generation = generate(readGeneration(body), jsonSchemaName(body, "chat"), body, prompts, context);
  if ("kind" in generation) return generation;
  const { request, texts, split } = generation;
  const promptTokens = prompts.reduce((sum, prompt) => sum + estimateTokens(prompt), 0);
  const header = {
    id: context.responseId,
    object: "text_completion",
    created: context.createdSeconds,
    model: request.model,
  };
  if (!request.stream) {
    return {
      kind: "json",
      status: 200,
      body: {
        ...header,
        choices: texts.map((text, index) => ({ index, text, logprobs: null, finish_reason: "stop" })),
        usage: usage(promptTokens, texts),
      },
    };
  }
  const chunk = (choice: JsonObject): JsonValue => ({
    ...header,
    choices: [choice],
    ...(request.includeUsage ? { usage: null } : {}),
  });
  const events = texts.flatMap((text, index) => [
    ...split(text).map((piece) => chunk({ index, text: piece, logprobs: null, finish_reason: null })),
    chunk({ index, text: "", logprobs: null, finish_reason: "stop" }),
  ]);
  if (request.includeUsage) events.push({ ...header, choices: [], usage: usage(promptTokens, texts) });
  return { kind: "stream", framing: "done", events };
}

/**
 * OpenAI's Responses API: the input (a string, or messages whose text parts count) after the
 * instructions is the prompt; one message output item with one output_text part. Streamed, the
 * typed events a client assembles it from, numbered by sequence_number from 0: created,
 * in_progress, the item and part added, the text in deltas cut like chat's, the text, part and
 * item done, then response.completed carrying the whole response with its usage.
 */
function answerResponses(body: JsonValue, context: AnswerContext): Answer {
  if (!isObject(body)) return badRequest("request body must be a JSON object");
  const input = typeof body.input === "string" ? body.input : chatPrompt(body.input);
  if (input === undefined) return badRequest("input must be a string or a non-empty array of {role, content} messages");
  const instructions = body.instructions ?? null;
  if (instructions !== null && typeof instructions !== "string") return badRequest("instructions must be a string");
  const prompt = instructions === null ? input : `${instructions}\n${input}`;
  const generation = generate(readResponsesRequest(body), jsonSchemaName(body, "responses"), body, [prompt], context);
  if ("kind" in generation) return generation;
  const { request, split } = generation;
  const text = generation.texts[0] ?? "";
  const suffix = context.responseId.replace(/[^A-Za-z0-9]/g, "");
  const itemId = `msg_${suffix}`;
  const inputTokens = estimateTokens(prompt);
  const outputTokens = estimateTokens(text);
  const part = (partText: string): JsonObject => ({ type: "output_text", text: partText, annotations: [] });
  const message = (status: string, content: JsonValue[]): JsonObject => ({
    type: "message",
    id: itemId,
    status,
    role: "assistant",
    content,
  });
  const response = (status: string, output: JsonValue[], usage: JsonValue): JsonObject => ({
    id: `resp_${suffix}`,
    object: "response",
    created_at: context.createdSeconds,
    status,
    error: null,
    incomplete_details: null,
    instructions,
    max_output_tokens: typeof body.max_output_tokens === "number" ? body.max_output_tokens : null,
    model: request.model,
    output,
    usage,
  });
  const completed = response("completed", [message("completed", [part(text)])], {
    input_tokens: inputTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: outputTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: inputTokens + outputTokens,
  });
  if (!request.stream) return { kind: "json", status: 200, body: completed };
  const at = { item_id: itemId, output_index: 0, content_index: 0 };
  const events: JsonObject[] = [
    { type: "response.created", response: response("in_progress", [], null) },
    { type: "response.in_progress", response: response("in_progress", [], null) },
    { type: "response.output_item.added", output_index: 0, item: message("in_progress", []) },
    { type: "response.content_part.added", ...at, part: part("") },
    ...split(text).map((delta) => ({ type: "response.output_text.delta", ...at, delta, logprobs: [] })),
    { type: "response.output_text.done", ...at, text, logprobs: [] },
    { type: "response.content_part.done", ...at, part: part(text) },
    { type: "response.output_item.done", output_index: 0, item: message("completed", [part(text)]) },
    { type: "response.completed", response: completed },
  ];
  return {
    kind: "stream",
    framing: "typed",
    events: events.map((event, sequence) => ({ ...event, sequence_number: sequence })),
  };
}

/**
 * Ollama's /api/chat: the messages are the prompt; streamed (the default), one NDJSON line per
 * piece with `message.content`, then a `done: true` line with done_reason, the durations and the
 * counts (prompt_eval_count, eval_count); with `stream: false`, that last line with the whole text.
 * Structured output (x-demo-task) streams in token-sized pieces, and breaks like chat's.
 */
function answerOllamaChat(body: JsonValue, context: AnswerContext): Answer {
  if (!isObject(body)) return badRequest("request body must be a JSON object");
  const prompt = chatPrompt(body.messages);
  if (prompt === undefined) return badRequest("messages must be a non-empty array of {role, content}");
  const generation = generate(readOllamaRequest(body), undefined, body, [prompt], context);
  if ("kind" in generation) return generation;
  const { request, split } = generation;
  const text = generation.texts[0] ?? "";
  const header = { model: request.model, created_at: new Date(context.createdSeconds * 1000).toISOString() };
  const promptTokens = estimateTokens(prompt);
  const evalCount = estimateTokens(text);
  // Nanoseconds, as Ollama reports them: a plausible 20 ms per token, reproducible for the cache tests.
  const last = (content: string): JsonObject => ({
    ...header,
    message: { role: "assistant", content },
    done_reason: "stop",
    done: true,
    total_duration: (promptTokens + evalCount) * 20_000_000,
    load_duration: 0,
    prompt_eval_count: promptTokens,
    prompt_eval_duration: promptTokens * 20_000_000,
    eval_count: evalCount,
    eval_duration: evalCount * 20_000_000,
  });
  if (!request.stream) return { kind: "json", status: 200, body: last(text) };
  const events: JsonValue[] = split(text).map((piece) => ({
    ...header,
    message: { role: "assistant", content: piece },
    done: false,
  }));
  events.push(last(""));
  return { kind: "stream", framing: "ndjson", events };
}

function answerEmbeddings(body: JsonValue, context: AnswerContext): Answer {
  if (!isObject(body)) return badRequest("request body must be a JSON object");
  const inputs = stringOrStrings(body.input);
  if (inputs === undefined) return badRequest("input must be a string or a non-empty array of strings");
  const model = body.model;
  const promptTokens = inputs.reduce((sum, input) => sum + estimateTokens(input), 0);
  return {
    kind: "json",
    status: 200,
    body: {
      object: "list",
      data: inputs.map((input, index) => ({ object: "embedding", index, embedding: embed(input, context.variant) })),
      model: typeof model === "string" ? model : "demo",
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    },
  };
}

/**
 * The catalogue's embedding when it has one for this variant, whatever its JSON type (a break
 * such as a base64 string or a wrapped vector must reach the wire as is), else a stable vector
 * of the text (a variant named for another task).
 */
function embed(input: string, variant: string): JsonValue {
  return renderOutput("embedding", variant, { input }) ?? textVector(input);
}

function answerPredict(task: string, body: JsonValue, context: AnswerContext): Answer {
  const output = renderOutput(task, context.variant, body);
  if (output === undefined) return unknownOutput(task, context.variant);
  return { kind: "json", status: 200, body: output };
}

/** KServe v2 / Triton: echoes the first input tensor back as FP32 output "output0". */
function answerInfer(model: string, body: JsonValue, context: AnswerContext): Answer {
  if (!isObject(body)) return badRequest("request body must be a JSON object");
  const inputs = body.inputs;
  const first = Array.isArray(inputs) ? inputs[0] : undefined;
  if (!isObject(first)) return badRequest("inputs must be a non-empty array of tensors");
  const shape = first.shape;
  if (!Array.isArray(shape) || !shape.every((dim) => typeof dim === "number" && Number.isInteger(dim) && dim >= 0)) {
    return badRequest("inputs[0].shape must be an array of non-negative integers");
  }
  const id = body.id;
  return {
    kind: "json",
    status: 200,
    body: {
      model_name: model,
      model_version: context.version,
      ...(typeof id === "string" ? { id } : {}),
      outputs: [
        {
          name: "output0",
          datatype: "FP32",
          shape,
          data: numbersOf(first.data ?? []),
        },
      ],
    },
  };
}

/** Row-major flattening of a (possibly nested) tensor; non-numbers become 0, as FP32 has no other. */
function numbersOf(data: JsonValue): number[] {
  if (Array.isArray(data)) return data.flatMap(numbersOf);
  return [typeof data === "number" ? data : 0];
}

/** All message contents joined, or undefined when messages is not a list of chat messages. */
function chatPrompt(messages: JsonValue | undefined): string | undefined {
  if (!Array.isArray(messages) || messages.length === 0) return undefined;
  const contents: string[] = [];
  for (const message of messages) {
    if (!isObject(message) || typeof message.role !== "string") return undefined;
    const content = message.content ?? null;
    if (typeof content === "string") contents.push(content);
    else if (Array.isArray(content)) {
      // Multimodal parts: only text parts carry prompt tokens the demo can count.
      for (const part of content) {
        if (isObject(part) && typeof part.text === "string") contents.push(part.text);
      }
    } else if (content !== null) return undefined;
  }
  return contents.join("\n");
}

function stringOrStrings(value: JsonValue | undefined): string[] | undefined {
  if (typeof value === "string") return [value];
  if (!Array.isArray(value) || value.length === 0) return undefined;
  const strings = value.filter((item): item is string => typeof item === "string");
  return strings.length === value.length ? strings : undefined;
}

/** Splits generated prose into fixed-size pieces so a stream has several content events. */
function pieces(content: string): string[] {
  const result: string[] = [];
  for (let start = 0; start < content.length; start += STREAM_PIECE_CHARS) {
    result.push(content.slice(start, start + STREAM_PIECE_CHARS));
  }
  return result;
}

/**
 * Splits structured output the way a tokenizer streams JSON: pieces of 3 to 8 code points cut
 * wherever they fall, inside keys, values and punctuation alike, so `"priority":3` or a string
 * value arrives over several events. The cuts are drawn from a generator seeded by the content,
 * so the same content always streams as the same events. Content under 3 code points is one piece.
 */
export function tokenPieces(content: string): string[] {
  const chars = Array.from(content);
  const random = seededRandom(Number.parseInt(sha256Hex(content).slice(0, 8), 16));
  const span = TOKEN_PIECE_MAX - TOKEN_PIECE_MIN + 1;
  const result: string[] = [];
  let start = 0;
  while (start < chars.length) {
    const remaining = chars.length - start;
    let size = TOKEN_PIECE_MIN + Math.floor(random() * span);
    // Never leave a tail shorter than the minimum: take it all when it fits, else leave exactly the minimum.
    if (remaining - size < TOKEN_PIECE_MIN)
      size = remaining <= TOKEN_PIECE_MAX ? remaining : remaining - TOKEN_PIECE_MIN;
    result.push(chars.slice(start, start + size).join(""));
    start += size;
  }
  return result;
}

function unknownOutput(task: string, variant: string): Answer {
  return errorAnswer(404, `the demo model has no output for task "${task}" in variant "${variant}"`, "not_found");
}

function badRequest(message: string): Answer {
  return errorAnswer(400, message, "invalid_request_error");
}

function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
