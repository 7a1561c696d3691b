// A streaming client for the end-to-end tests: posts a `"stream": true` request through the stack
// and records every Server-Sent Event with its arrival time, so tests can tell tokens that arrive
// spread over a generation from one burst, and a clean end from a reset.
import type { Test } from "tap";
import type { Stack } from "../../src/devstack/stack.js";

/** The demo model's stream pacing the streaming tests ask for (x-demo-* request headers). */
export const FIRST_TOKEN_MS = 150;
export const INTER_TOKEN_MS = 40;
export const PACING = {
  "x-demo-first-token-ms": String(FIRST_TOKEN_MS),
  "x-demo-inter-token-ms": String(INTER_TOKEN_MS),
};
/** The demo's structured output: a demo.v1.TicketTriage object, bound by the default config's contracts. */
export const TRIAGE = { "x-demo-task": "chat_structured" };

export interface StreamEvent {
  /** Ms after the request was sent. */
  readonly at: number;
  readonly event: string | undefined;
  readonly data: string;
}

export interface Streamed {
  readonly status: number;
  readonly headers: Headers;
  readonly events: StreamEvent[];
  /** The response body broke off (a reset) rather than ending. */
  readonly broken: boolean;
}

/** The body streamPost() sends: the demo model derives its answer from exactly these bytes. */
export function sentBody(body: Record<string, unknown>): Record<string, unknown> {
  return { stream: true, ...body };
}

/** Posts a streaming request; with `abortAfterEvents`, the client leaves after that many events. */
export async function streamPost(
  url: string,
  body: Record<string, unknown>,
  headers: Record<string, string>,
  abortAfterEvents?: number,
): Promise<Streamed> {
  const { records, ...rest } = await postRecords(url, sentBody(body), headers, splitEvents, abortAfterEvents);
  return { ...rest, events: records };
}

/** Takes the complete events (each ended by a blank line) off the front of what arrived. */
function splitEvents(buffered: string, at: number): { records: StreamEvent[]; rest: string } {
  const records: StreamEvent[] = [];
  let rest = buffered;
  for (let end = rest.indexOf("\n\n"); end !== -1; end = rest.indexOf("\n\n")) {
    const lines = rest.slice(0, end).split("\n");
    rest = rest.slice(end + 2);
    const event = lines.find((line) => line.startsWith("event: "))?.slice("event: ".length);
    const data = lines
      .filter((line) => line.startsWith("data: "))
      .map((line) => line.slice("data: ".length))
      .join("\n");
    records.push({ at, event, data });
  }
  return { records, rest };
}

/** A stream's records (SSE events, NDJSON lines) as the client got them. */
export interface StreamedRecords<Item> {
  readonly status: number;
  readonly headers: Headers;
  readonly records: Item[];
  /** The response body broke off (a reset) rather than ending. */
  readonly broken: boolean;
}

/**
 * Posts `body` as is and reads the answer as it arrives: `split` takes the complete records off the
 * front of the text so far (`at`: ms since the request was sent); with `abortAfter`, the client
 * leaves after that many records.
 */
export async function postRecords<Item>(
  url: string,
  body: unknown,
  headers: Record<string, string>,
  split: (buffered: string, at: number) => { records: Item[]; rest: string },
  abortAfter?: number,
): Promise<StreamedRecords<Item>> {
  const controller = new AbortController();
  const sent = performance.now();
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.any([controller.signal, AbortSignal.timeout(30_000)]),
  });
  const records: Item[] = [];
  let buffered = "";
  let broken = false;
  const decoder = new TextDecoder();
  const reader = response.body?.getReader();
  try {
    while (reader !== undefined) {
      const { done, value } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      const taken = split(buffered, performance.now() - sent);
      records.push(...taken.records);
      buffered = taken.rest;
      if (abortAfter !== undefined && records.length >= abortAfter) {
        controller.abort();
        break;
      }
    }
  } catch {
    broken = !controller.signal.aborted;
  }
  return { status: response.status, headers: response.headers, records, broken };
}

/** Asserts the pieces of output (events, lines) were spread over the generation, not delivered in one burst. */
export function assertPaced(t: Test, output: readonly { readonly at: number }[], label: string): void {
  const first = output[0]?.at ?? 0;
  const last = output.at(-1)?.at ?? 0;
  const expected = (output.length - 1) * INTER_TOKEN_MS;
  t.ok(output.length >= 5, `${label}: ${output.length} pieces of output`);
  t.ok(last - first >= expected * 0.5, `${label}: spread ${Math.round(last - first)} ms of ${expected} ms expected`);
}

export async function guardMetrics(stack: Stack): Promise<string> {
  return (await fetch(`${stack.guard?.adminUrl}/metrics`)).text();
}

/** Streams cancelled by either demo pool (the complexity stage picks the pool). */
export async function streamsCancelled(stack: Stack): Promise<number> {
  let total = 0;
  for (const pool of [stack.light, stack.heavy]) {
    total += ((await (await fetch(`${pool.url}/__demo/stats`)).json()) as { streamsCancelled: number })
      .streamsCancelled;
  }
  return total;
}

export async function eventually(check: () => Promise<boolean>, timeoutMs = 5_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return check();
}
