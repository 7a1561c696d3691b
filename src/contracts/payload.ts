// Where a contract's payload lives in a response body. A payload path is a small JSON path:
//   "$"                                  the whole body
//   "data[*].embedding"                  each item's field ([*] = every item, [2] = one item)
//   "choices[*].message.content<json>"   JSON text inside a string field (a ```json fence and
//                                        surrounding whitespace are tolerated)
// Extraction yields one payload per match, each with the concrete path used in violations.

export type PayloadStep =
  | { readonly kind: "key"; readonly name: string }
  | { readonly kind: "each" }
  | { readonly kind: "index"; readonly index: number }
  | { readonly kind: "json" };

export type ParsedPayloadPath =
  | { readonly ok: true; readonly steps: readonly PayloadStep[] }
  | { readonly ok: false; readonly error: string };

const TOKEN = /^(?:\.?([A-Za-z_][A-Za-z0-9_-]*)|\[\*\]|\[(\d{1,9})\]|<json>)/;

export function parsePayloadPath(text: string): ParsedPayloadPath {
  let rest = text.startsWith("$") ? text.slice(1) : text;
  const steps: PayloadStep[] = [];
  while (rest.length > 0) {
    const match = TOKEN.exec(rest);
    if (match === null) {
      return { ok: false, error: `bad payload path "${text}" at "${rest}": expected .key, [*], [N] or <json>` };
    }
    const [token, name, index] = match;
    if (name !== undefined) {
      if (steps.length > 0 && !token.startsWith("."))
        return { ok: false, error: `bad payload path "${text}": missing "." before "${name}"` };
      steps.push({ kind: "key", name });
    } else if (index !== undefined) steps.push({ kind: "index", index: Number(index) });
    else if (token === "[*]") steps.push({ kind: "each" });
    else steps.push({ kind: "json" });
    rest = rest.slice(token.length);
  }
  return { ok: true, steps };
}

export interface PayloadProblem {
  readonly rule: string;
  readonly message: string;
}

export type Payload =
  | { readonly path: string; readonly value: unknown }
  | { readonly path: string; readonly problem: PayloadProblem };

/** Strips whitespace and a Markdown code fence (```json ... ```) models like to add. */
export function unfence(text: string): string {
  let inner = text.trim();
  if (!inner.startsWith("```")) return inner;
  const firstNewline = inner.indexOf("\n");
  inner = firstNewline === -1 ? inner.slice(3) : inner.slice(firstNewline + 1);
  inner = inner.trimEnd();
  if (inner.endsWith("```")) inner = inner.slice(0, -3);
  return inner.trim();
}

function joinKey(path: string, name: string): string {
  return path === "" ? name : `${path}.${name}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Walks `steps` from `root`, returning every payload (or the problem that prevented reaching
 * one). At most `limit` entries; `overflow` reports that more matched.
 */
export function extractPayloads(
  root: unknown,
  steps: readonly PayloadStep[],
  limit: number,
): { payloads: Payload[]; overflow: boolean } {
  const payloads: Payload[] = [];
  let overflow = false;
  const visit = (value: unknown, stepIndex: number, path: string): void => {
    if (payloads.length >= limit) {
      overflow = true;
      return;
    }
    const step = steps[stepIndex];
    if (step === undefined) {
      payloads.push({ path, value });
      return;
    }
    switch (step.kind) {
      case "key": {
        const next = joinKey(path, step.name);
        if (!isObject(value) || !(step.name in value) || value[step.name] === undefined) {
          payloads.push({ path: next, problem: { rule: "payload.missing", message: `no "${step.name}" here` } });
          return;
        }
        visit(value[step.name], stepIndex + 1, next);
        return;
      }
      case "index": {
        const next = `${path}[${step.index}]`;
        if (!Array.isArray(value) || step.index >= value.length) {
          payloads.push({ path: next, problem: { rule: "payload.missing", message: `no item ${step.index} here` } });
          return;
        }
        visit(value[step.index], stepIndex + 1, next);
        return;
      }
      case "each": {
        if (!Array.isArray(value)) {
          payloads.push({ path, problem: { rule: "payload.not_array", message: "expected an array" } });
          return;
        }
        if (value.length === 0) {
          payloads.push({ path, problem: { rule: "payload.empty", message: "expected at least one item" } });
          return;
        }
        for (let i = 0; i < value.length && !overflow; i++) visit(value[i], stepIndex + 1, `${path}[${i}]`);
        return;
      }
      case "json": {
        const next = `${path}<json>`;
        if (typeof value !== "string") {
          payloads.push({
            path: next,
            problem: { rule: "payload.not_string", message: "expected a string holding JSON" },
          });
          return;
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(unfence(value));
        } catch (error) {
          payloads.push({
            path: next,
            problem: { rule: "json.syntax", message: `not JSON: ${(error as Error).message}` },
          });
          return;
        }
        visit(parsed, stepIndex + 1, next);
        return;
      }
    }
  };
  visit(root, 0, "");
  return { payloads, overflow };
}

/** Reads a string (or number, as text) at a dotted path of plain keys; anything else is absent. */
export function stringAt(body: unknown, dottedPath: string): string | undefined {
  let value: unknown = body;
  for (const key of dottedPath.split(".")) {
    if (!isObject(value)) return undefined;
    value = value[key];
  }
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  return undefined;
}
