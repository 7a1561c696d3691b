// End-to-end helpers: a real Envoy + guard + demo models per test (src/devstack), torn down with the test.
import * as http from "node:http";
import type { Test } from "tap";
import { loadGuardConfigObject, type Stack, type StackOptions, startStack } from "../../src/devstack/stack.js";

export async function stackFor(t: Test, options: StackOptions = {}): Promise<Stack> {
  const stack = await startStack(options);
  t.teardown(() => stack.stop());
  return stack;
}

/** The embedded default config with changes applied on top (a shallow merge per top-level key). */
export async function defaultConfigWith(changes: Record<string, unknown>): Promise<Record<string, unknown>> {
  return { ...(await loadGuardConfigObject()), ...changes };
}

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

export async function post(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
  timeoutMs = 10_000,
): Promise<Answer> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text };
}

/**
 * A POST from a chosen loopback source address (e.g. 127.0.0.2): Envoy reports it to the guard as
 * the source.address attribute, a source the client cannot forge (identity rules read it).
 */
export function postFrom(
  localAddress: string,
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
  timeoutMs = 10_000,
): Promise<Answer> {
  const payload = typeof body === "string" ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      {
        method: "POST",
        localAddress,
        agent: false,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload), ...headers },
        signal: AbortSignal.timeout(timeoutMs),
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const answerHeaders = new Headers();
          for (const [name, value] of Object.entries(response.headers)) {
            if (value !== undefined) answerHeaders.set(name, Array.isArray(value) ? value.join(", ") : value);
          }
          resolve({ status: response.statusCode ?? 0, headers: answerHeaders, text: Buffer.concat(chunks).toString() });
        });
        response.on("error", reject);
      },
    );
    request.on("error", reject);
    request.end(payload);
  });
}

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
}

export async function upstreamRequests(poolUrl: string): Promise<SeenRequest[]> {
  const response = await fetch(`${poolUrl}/__demo/requests`);
  return (await response.json()) as SeenRequest[];
}

export async function upstreamServed(poolUrl: string): Promise<number> {
  const response = await fetch(`${poolUrl}/__demo/stats`);
  return ((await response.json()) as { served: number }).served;
}

export const CHAT = { model: "demo", messages: [{ role: "user", content: "hello there" }] };

/** Runs `work` over `items`, at most `concurrency` at a time; results in item order. */
export async function mapConcurrently<T, R>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

/** Envoy's counters whose names match `pattern` (a regular expression), from its admin API. */
export async function envoyStats(adminUrl: string, pattern: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${adminUrl}/stats?filter=${encodeURIComponent(pattern)}`)).text();
  return new Map(
    text
      .trim()
      .split("\n")
      .map((line) => {
        const [name = "", value = ""] = line.split(": ");
        return [name, Number(value)];
      }),
  );
}

/** One Envoy counter by its exact name; 0 while Envoy has not created it. */
export async function envoyCounter(adminUrl: string, name: string): Promise<number> {
  const exact = `^${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`;
  return (await envoyStats(adminUrl, exact)).get(name) ?? 0;
}

/** Envoy as it runs without the runtime flag: every finished ext_proc stream is reset. */
export function resettingEveryStream(yaml: string): string {
  const edited = yaml.replace(
    "envoy.reloadable_features.ext_proc_graceful_grpc_close: true",
    "envoy.reloadable_features.ext_proc_graceful_grpc_close: false",
  );
  if (edited === yaml) throw new Error("envoy.yaml: the graceful close flag moved");
  return edited;
}

/** performance.now() of the guard's log line with this message (pino's time is epoch ms). */
export function loggedAt(output: string, message: string): number {
  const line = output.split("\n").find((text) => text.includes(`"msg":"${message}"`));
  if (line === undefined) throw new Error(`the guard never logged "${message}"`);
  return (JSON.parse(line) as { time: number }).time - performance.timeOrigin;
}
