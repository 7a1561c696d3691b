// A streaming client for the end-to-end tests: posts a `"stream": true` request through the stack
// and records every Server-Sent Event with its arrival time, so tests can tell tokens that arrive
// spread over a generation from one burst, and a clean end from a reset.
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
  const controller = new AbortController();
  const sent = performance.now();
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(sentBody(body)),
    signal: AbortSignal.any([controller.signal, AbortSignal.timeout(30_000)]),
  });
  const events: StreamEvent[] = [];
  let buffered = "";
  let broken = false;
  const decoder = new TextDecoder();
  const reader = response.body?.getReader();
  try {
    while (reader !== undefined) {
      const { done, value } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      for (let end = buffered.indexOf("\n\n"); end !== -1; end = buffered.indexOf("\n\n")) {
        const lines = buffered.slice(0, end).split("\n");
        buffered = buffered.slice(end + 2);
        const event = lines.find((line) => line.startsWith("event: "))?.slice("event: ".length);
        const data = lines
          .filter((line) => line.startsWith("data: "))
          .map((line) => line.slice("data: ".length))
          .join("\n");
        events.push({ at: performance.now() - sent, event, data });
      }
      if (abortAfterEvents !== undefined && events.length >= abortAfterEvents) {
        controller.abort();
        break;
      }
    }
  } catch {
    broken = !controller.signal.aborted;
  }
  return { status: response.status, headers: response.headers, events, broken };
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
