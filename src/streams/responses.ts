// OpenAI's Responses API stream (`/v1/responses`, `stream: true`): typed events, each `data` a JSON
// object whose `type` names it (the SSE `event:` field repeats it and stands in when `type` is
// missing). There is no [DONE]: `response.completed` (or `.incomplete`, `.failed`) ends the stream
// and carries the whole response, which from then on IS the document. Before it, the document is
// the `response.created` snapshot with an `output` assembled from the item, part and delta events.
//
// Read: response.created / .in_progress / .queued (snapshot), response.output_item.added / .done,
// response.content_part.added, response.output_text.delta / .done, response.refusal.delta / .done,
// response.function_call_arguments.delta / .done, response.completed / .incomplete / .failed, error.
// Other event types (reasoning, tool progress, annotations, …) are ignored.
import {
  errorOf,
  type FormatReader,
  indexOf,
  isObject,
  type JsonObject,
  type ReadingDraft,
  type TextBudget,
  tokenUsage,
  upstreamError,
} from "./reading.js";

interface Part {
  base: JsonObject;
  /** "text" for output_text parts, "refusal" for refusal parts. */
  readonly key: "text" | "refusal";
  text: string;
}

interface Item {
  base: JsonObject;
  readonly parts: Map<number, Part>;
  arguments: string | undefined;
}

const MESSAGE: JsonObject = { type: "message", role: "assistant" };
const FUNCTION_CALL: JsonObject = { type: "function_call" };

export class ResponsesReader implements FormatReader {
  readonly #budget: TextBudget;
  #snapshot: JsonObject | undefined;
  #final: JsonObject | undefined;
  #model: string | undefined;
  readonly #items = new Map<number, Item>();

  constructor(budget: TextBudget) {
    this.#budget = budget;
  }

  read(value: unknown, event: string | undefined, draft: ReadingDraft): void {
    if (!isObject(value)) {
      draft.malformed = "expected a Responses API event object";
      return;
    }
    const type = typeof value.type === "string" ? value.type : event;
    switch (type) {
      case undefined:
        draft.malformed = "Responses API event without a type";
        return;
      case "response.created":
      case "response.in_progress":
      case "response.queued":
        this.#response(value, draft, (response) => {
          this.#snapshot = response;
        });
        return;
      case "response.completed":
      case "response.incomplete":
      case "response.failed":
        this.#response(value, draft, (response) => {
          this.#final = response;
          draft.done = true;
          if (type === "response.failed")
            draft.error = upstreamError(response.error) ?? { message: "response.failed without an error" };
          const usage = tokenUsage(response.usage);
          if (usage !== undefined) draft.usage = usage;
        });
        return;
      case "error":
        draft.error = errorOf({ message: value.message ?? "error event", code: value.code });
        return;
      case "response.output_item.added":
      case "response.output_item.done":
        this.#outputItem(value, type === "response.output_item.done", draft);
        return;
      case "response.content_part.added":
        this.#contentPart(value, draft);
        return;
      case "response.output_text.delta":
      case "response.refusal.delta":
        this.#partDelta(value, type === "response.refusal.delta" ? "refusal" : "text", draft);
        return;
      case "response.output_text.done":
      case "response.refusal.done":
        this.#at(value, true, draft, (output, content) => {
          draft.completed.push(partTarget(output, content, type === "response.refusal.done" ? "refusal" : "text"));
        });
        return;
      case "response.function_call_arguments.delta":
        this.#at(value, false, draft, (output) => {
          if (typeof value.delta !== "string") {
            draft.malformed = `${type}: delta is not a string`;
            return;
          }
          const item = this.#item(output, FUNCTION_CALL);
          if (value.delta === "") return;
          const target = `output[${output}].arguments`;
          draft.deltas.push({ target, text: value.delta });
          const kept = item.arguments ?? "";
          item.arguments = this.#budget.take(value.delta) ? kept + value.delta : kept;
        });
        return;
      case "response.function_call_arguments.done":
        this.#at(value, false, draft, (output) => {
          draft.completed.push(`output[${output}].arguments`);
        });
        return;
    }
  }

  /** An event carrying the whole `response`: its model is noted, `use` keeps it. */
  #response(value: JsonObject, draft: ReadingDraft, use: (response: JsonObject) => void): void {
    const response = value.response;
    if (!isObject(response)) {
      draft.malformed = `${String(value.type)}: no response object`;
      return;
    }
    if (typeof response.model === "string") {
      this.#model = response.model;
      draft.model = response.model;
    }
    use(response);
  }

  /** Reads output_index (and content_index when `withContent`), malformed when they are not indexes. */
  #at(
    value: JsonObject,
    withContent: boolean,
    draft: ReadingDraft,
    use: (output: number, content: number) => void,
  ): void {
    const output = indexOf(value.output_index);
    const content = withContent ? indexOf(value.content_index) : 0;
    if (output === undefined || content === undefined) {
      draft.malformed = `${String(value.type)}: no output_index${withContent ? " or content_index" : ""}`;
      return;
    }
    use(output, content);
  }

  #outputItem(value: JsonObject, done: boolean, draft: ReadingDraft): void {
    this.#at(value, false, draft, (output) => {
      if (!isObject(value.item)) {
        draft.malformed = `${String(value.type)}: no item object`;
        return;
      }
      const item = this.#item(output, value.item);
      if (done) {
        // The finished item's state (status "completed", …); its text is what the deltas built, if
        // any came (else the item's own).
        const built = item.parts.size > 0 || item.arguments !== undefined;
        item.base = built ? { ...item.base, ...withoutOutput(value.item) } : value.item;
        draft.completed.push(...itemTargets(output, this.#itemDocument(item)));
      } else item.base = value.item;
    });
  }

  #contentPart(value: JsonObject, draft: ReadingDraft): void {
    this.#at(value, true, draft, (output, content) => {
      if (!isObject(value.part)) {
        draft.malformed = "response.content_part.added: no part object";
        return;
      }
      const item = this.#item(output, MESSAGE);
      const key = value.part.type === "refusal" ? "refusal" : "text";
      const part = item.parts.get(content);
      if (part === undefined) item.parts.set(content, { base: value.part, key, text: "" });
      else part.base = value.part;
    });
  }

  #partDelta(value: JsonObject, key: "text" | "refusal", draft: ReadingDraft): void {
    this.#at(value, true, draft, (output, content) => {
      if (typeof value.delta !== "string") {
        draft.malformed = `${String(value.type)}: delta is not a string`;
        return;
      }
      const item = this.#item(output, MESSAGE);
      let part = item.parts.get(content);
      if (part === undefined) {
        const base = key === "text" ? { type: "output_text", annotations: [] } : { type: "refusal" };
        part = { base, key, text: "" };
        item.parts.set(content, part);
      }
      if (value.delta === "") return;
      draft.deltas.push({ target: partTarget(output, content, key), text: value.delta });
      if (this.#budget.take(value.delta)) part.text += value.delta;
    });
  }

  #item(output: number, base: JsonObject): Item {
    let item = this.#items.get(output);
    if (item === undefined) {
      item = { base, parts: new Map(), arguments: undefined };
      this.#items.set(output, item);
    }
    return item;
  }

  #itemDocument(item: Item): JsonObject {
    const document: Record<string, unknown> = { ...item.base };
    if (item.parts.size > 0) {
      document.content = [...item.parts]
        .sort(([a], [b]) => a - b)
        .map(([, part]) => ({ ...part.base, [part.key]: part.text }));
    } else if (item.base.type === "message" && !Array.isArray(item.base.content)) document.content = [];
    if (item.arguments !== undefined || item.base.type === "function_call")
      document.arguments = item.arguments ?? (typeof item.base.arguments === "string" ? item.base.arguments : "");
    return document;
  }

  document(): unknown {
    if (this.#final !== undefined) return this.#final;
    const output = [...this.#items].sort(([a], [b]) => a - b).map(([, item]) => this.#itemDocument(item));
    const model = this.#model ?? null;
    return { ...(this.#snapshot ?? {}), object: "response", model, output };
  }

  targets(): string[] {
    const document = this.document() as JsonObject;
    const output = Array.isArray(document.output) ? document.output : [];
    return output.flatMap((item: unknown, index) => (isObject(item) ? itemTargets(index, item) : []));
  }
}

function partTarget(output: number, content: number, key: "text" | "refusal"): string {
  return `output[${output}].content[${content}].${key}`;
}

/** The text targets of one output item of a response document. */
function itemTargets(output: number, item: JsonObject): string[] {
  if (item.type === "function_call") return [`output[${output}].arguments`];
  if (!Array.isArray(item.content)) return [];
  return item.content.flatMap((part: unknown, content) => {
    if (!isObject(part)) return [];
    if (part.type === "output_text") return [partTarget(output, content, "text")];
    return part.type === "refusal" ? [partTarget(output, content, "refusal")] : [];
  });
}

/** An item's fields but the output the deltas build (content, arguments). */
function withoutOutput(item: JsonObject): JsonObject {
  const { content: _content, arguments: _arguments, ...rest } = item;
  return rest;
}
