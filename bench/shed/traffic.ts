// Sending the bench's requests: one timed request, and the loops that pace them (open loop at a
// fixed rate, closed loop, one at a time). Retrying clients are in clients.ts.
import { Agent, request as httpRequest } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { BenchRequest, Priority } from "./workload.js";

/**
 * The loopback address each class's requests are sent from. Envoy strips a client's x-guard-priority
 * (a client must not pick its own class), so the class travels the way production's does: as a
 * source Envoy verifies and reports to the guard (source.address, mapped by identity rules, see
 * `classRules`). Every set-up gets the same sources, so they still see identical traffic.
 */
export const CLASS_SOURCES: Readonly<Record<Priority, string>> = {
  critical: "127.0.0.2",
  standard: "127.0.0.4",
  sheddable: "127.0.0.3",
};

/** The guard's identity rules giving each source address its class (Envoy reports it as "ip:port"). */
export function classRules(): { attribute: string; prefix: string; priority: Priority }[] {
  return Object.entries(CLASS_SOURCES).map(([priority, address]) => ({
    attribute: "source.address",
    prefix: `${address}:`,
    priority: priority as Priority,
  }));
}

/**
 * One keep-alive pool per source address: connections are reused as fetch's are, and a connection
 * only ever carries one class. Idle sockets are unref'd by the agent, so they keep no process alive.
 */
const agents = new Map<string, Agent>(
  Object.values(CLASS_SOURCES).map((address) => [address, new Agent({ keepAlive: true, localAddress: address })]),
);

interface Answer {
  readonly status: number;
  readonly header: (name: string) => string | null;
}

/** A POST from `localAddress`'s pool, read to its end; rejects on transport errors and the timeout. */
function post(
  url: string,
  localAddress: string,
  body: string,
  headers: Readonly<Record<string, string>>,
  timeoutMs: number,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      url,
      {
        method: "POST",
        agent: agents.get(localAddress),
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers },
        signal: AbortSignal.timeout(timeoutMs),
      },
      (response) => {
        response.on("data", () => undefined);
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 0,
            header: (name) => {
              const value = response.headers[name];
              return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
            },
          }),
        );
        response.on("error", reject);
        // Cut mid-body (the timeout, a reset): no "end", and not always an "error" either.
        response.on("close", () => {
          if (!response.complete) reject(new Error("response cut short"));
        });
      },
    );
    outgoing.on("error", reject);
    outgoing.end(body);
  });
}

export interface Sample {
  readonly priority: Priority;
  /** 0: no answer within the client timeout (or a transport error). */
  readonly status: number;
  readonly ms: number;
  readonly workMs: number;
  readonly good: boolean;
  /** Answered by the protection layer (guard or Envoy filter), not by the model. */
  readonly shed: boolean;
  /** How late the generator sent it against its schedule. */
  readonly lagMs: number;
  /** Status and the guard's shed reason, e.g. "429 shed.overload", "504", "0" (no answer). */
  readonly outcome: string;
  /** Answered by the demo model (its x-demo-pool header), not by Envoy or the guard. */
  readonly fromModel: boolean;
  /**
   * The wait the answer asks for, read as the OpenAI SDKs read it: retry-after-ms, else Retry-After
   * in seconds; null when neither is a number.
   */
  readonly retryAfterMs: number | null;
  /** The rate-limit headers of a guard's budget answer (429 budget.*), as sent; null on any other answer. */
  readonly budgetHeaders: BudgetHeaders | null;
}

export interface BudgetHeaders {
  readonly retryAfter: string | null;
  readonly retryAfterMs: string | null;
  readonly resetTokens: string | null;
}

export async function send(
  url: string,
  request: BenchRequest,
  timeoutMs: number,
  lagMs: number,
  headers: Readonly<Record<string, string>> = {},
): Promise<Sample> {
  const started = performance.now();
  let status = 0;
  let fromModel = false;
  let shedReason: string | null = null;
  let retryAfterMs: number | null = null;
  let budgetHeaders: BudgetHeaders | null = null;
  try {
    const response = await post(url, CLASS_SOURCES[request.priority], request.body, headers, timeoutMs);
    status = response.status;
    fromModel = response.header("x-demo-pool") !== null;
    shedReason = response.header("x-guard-reason");
    retryAfterMs = advertisedWaitMs(response.header("retry-after-ms"), response.header("retry-after"));
    if (shedReason?.startsWith("budget.") === true)
      budgetHeaders = {
        retryAfter: response.header("retry-after"),
        retryAfterMs: response.header("retry-after-ms"),
        resetTokens: response.header("x-ratelimit-reset-tokens"),
      };
  } catch {
    status = 0;
  }
  const ms = performance.now() - started;
  return {
    priority: request.priority,
    status,
    ms,
    workMs: request.workMs,
    good: status === 200 && ms <= request.sloMs,
    shed: (status === 429 || status === 503) && !fromModel,
    lagMs,
    outcome: shedReason === null ? String(status) : `${status} ${shedReason}`,
    fromModel,
    retryAfterMs,
    budgetHeaders,
  };
}

function advertisedWaitMs(milliseconds: string | null, seconds: string | null): number | null {
  const ms = milliseconds === null ? Number.NaN : Number.parseFloat(milliseconds);
  if (!Number.isNaN(ms)) return ms;
  return seconds !== null && /^\d+$/.test(seconds.trim()) ? Number(seconds) * 1_000 : null;
}

/**
 * Fixed-rate schedule: the i-th request is due at start + i / rate, independent of answers. Requests
 * `send` rejects keep their place in the schedule but are not sent (and not sampled).
 */
export async function openLoop(
  url: string,
  rate: number,
  durationMs: number,
  next: (index: number) => BenchRequest,
  timeoutMs: number,
  sends: (request: BenchRequest) => boolean = () => true,
): Promise<Sample[]> {
  const count = Math.max(1, Math.floor((rate * durationMs) / 1000));
  const start = performance.now();
  const pending: Promise<Sample>[] = [];
  for (let i = 0; i < count; i++) {
    const request = next(i);
    if (!sends(request)) continue;
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    pending.push(send(url, request, timeoutMs, Math.max(0, performance.now() - due)));
  }
  return Promise.all(pending);
}

/** `count` requests, each sent when the previous one has been answered: latency with nothing else in flight. */
export async function oneAtATime(
  url: string,
  count: number,
  next: (index: number) => BenchRequest,
  timeoutMs: number,
): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let i = 0; i < count; i++) samples.push(await send(url, next(i), timeoutMs, 0));
  return samples;
}

/** Closed loop with `concurrency` workers for `durationMs`: saturation throughput or unloaded latency. */
export async function closedLoop(
  url: string,
  concurrency: number,
  durationMs: number,
  next: (index: number) => BenchRequest,
  timeoutMs: number,
): Promise<Sample[]> {
  const samples: Sample[] = [];
  const end = performance.now() + durationMs;
  let index = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) samples.push(await send(url, next(index++), timeoutMs, 0));
    }),
  );
  return samples;
}
