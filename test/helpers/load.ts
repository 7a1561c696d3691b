// Closed-loop load through Envoy for the fault and soak tests: N workers send requests back to back,
// every answer is recorded (status, or the transport error), and 200 answers from the model are
// checked end to end: the model saw the exact request bytes (x-demo-request-sha256) and the client
// got the exact answer the demo model gives for that request (computed by an in-process copy).
import { createHash } from "node:crypto";
import { createDemoModel, type DemoModel } from "../../src/demo/server.js";

export interface Shot {
  readonly path: string;
  readonly body: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface Result {
  readonly shot: Shot;
  /** HTTP status, or "error" when the transport failed (reset, timeout). */
  readonly status: number | "error";
  readonly error?: string;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly headers: Headers | undefined;
  readonly text: string;
}

export interface Load {
  /** Stops issuing new requests and waits for the ones in flight. */
  stop(): Promise<Result[]>;
  /** Results so far. */
  readonly results: readonly Result[];
}

export async function send(url: string, shot: Shot, timeoutMs: number): Promise<Result> {
  const startedAt = performance.now();
  try {
    const response = await fetch(`${url}${shot.path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...shot.headers },
      body: shot.body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    return { shot, status: response.status, startedAt, endedAt: performance.now(), headers: response.headers, text };
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const message = `${(error as Error).name}: ${(error as Error).message}${cause === undefined ? "" : ` (${cause.code ?? cause.message ?? ""})`}`;
    return {
      shot,
      status: "error",
      error: message,
      startedAt,
      endedAt: performance.now(),
      headers: undefined,
      text: "",
    };
  }
}

/**
 * Asks for a streamed chat answer and abandons it after its first bytes, as a cancelling client
 * does; resolves with the outcome ("200 cancelled", or "error <name>" when the request failed).
 */
export async function cancelAfterFirstBytes(url: string, content: string, timeoutMs = 30_000): Promise<string> {
  const abort = new AbortController();
  try {
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "demo", stream: true, max_tokens: 64, messages: [{ role: "user", content }] }),
      signal: AbortSignal.any([abort.signal, AbortSignal.timeout(timeoutMs)]),
    });
    await response.body?.getReader().read();
    abort.abort();
    return `${response.status} cancelled`;
  } catch (error) {
    return `error ${(error as Error).name}`;
  }
}

export function startLoad(url: string, next: (index: number) => Shot, concurrency: number, timeoutMs = 20_000): Load {
  const results: Result[] = [];
  let stopped = false;
  let index = 0;
  const workers = Array.from({ length: concurrency }, async () => {
    while (!stopped) results.push(await send(url, next(index++), timeoutMs));
  });
  return {
    results,
    async stop() {
      stopped = true;
      await Promise.all(workers);
      return results;
    },
  };
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Fields of a demo answer that differ per response (ids, clocks); everything else is a function of the request. */
const VOLATILE = new Set(["id", "created", "computed_at"]);

function stripVolatile(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripVolatile);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([key]) => !VOLATILE.has(key))
      .map(([key, item]) => [key, stripVolatile(item)]),
  );
}

/** The deterministic content of the demo model's answer to a shot, from an in-process demo model. */
export class ExpectedAnswers {
  readonly #model: DemoModel = createDemoModel({});
  #url: Promise<string> | undefined;
  readonly #cache = new Map<string, string>();

  async expected(shot: Shot): Promise<string> {
    const key = `${shot.path}\0${shot.body}`;
    const known = this.#cache.get(key);
    if (known !== undefined) return known;
    this.#url ??= this.#model.listen(0).then((address) => address.url);
    const answer = await send(await this.#url, { path: shot.path, body: shot.body }, 10_000);
    const normalised = JSON.stringify(stripVolatile(JSON.parse(answer.text)));
    this.#cache.set(key, normalised);
    return normalised;
  }

  /** Problems with a 200 answer that came from the model, or [] when it is intact. */
  async check(result: Result): Promise<string[]> {
    const problems: string[] = [];
    const seen = result.headers?.get("x-demo-request-sha256");
    if (seen !== sha256(result.shot.body))
      problems.push(`request checksum ${String(seen)} does not match what was sent`);
    let got: string;
    try {
      got = JSON.stringify(stripVolatile(JSON.parse(result.text)));
    } catch {
      return [...problems, `response body is not JSON (${result.text.length} bytes): truncated or corrupted`];
    }
    if (got !== (await this.expected(result.shot)))
      problems.push(`response body differs from the model's answer: ${result.text.slice(0, 200)}`);
    return problems;
  }

  close(): Promise<void> {
    return this.#model.close();
  }
}

/** Request bodies that differ per index (so nothing is answered from the cache unless asked). */
export function chatShot(index: number, headers: Readonly<Record<string, string>> = {}): Shot {
  return {
    path: "/v1/chat/completions",
    body: JSON.stringify({
      model: "demo",
      messages: [{ role: "user", content: `request ${index}: summarise the incident report` }],
    }),
    headers,
  };
}

/** A mix over the demo's APIs: chat, completions, embeddings, sentiment (contract-checked). */
export function mixedShot(index: number, headers: Readonly<Record<string, string>> = {}): Shot {
  switch (index % 4) {
    case 0:
      return chatShot(index, headers);
    case 1:
      return {
        path: "/v1/completions",
        body: JSON.stringify({ model: "demo", prompt: `complete ${index}`, max_tokens: 16 }),
        headers,
      };
    case 2:
      return { path: "/v1/embeddings", body: JSON.stringify({ model: "embed", input: `text ${index}` }), headers };
    default:
      return { path: "/v1/predict/sentiment", body: JSON.stringify({ text: `delivery ${index} was fine` }), headers };
  }
}

export function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}
