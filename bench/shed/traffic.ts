// Sending the bench's requests: one timed request, and the loops that pace them (open loop at a
// fixed rate, closed loop, one at a time). Retrying clients are in clients.ts.
import { setTimeout as sleep } from "node:timers/promises";
import type { BenchRequest, Priority } from "./workload.js";

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
  /** The answer's Retry-After in seconds; null when absent or not a number of seconds. */
  readonly retryAfterSeconds: number | null;
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
  let retryAfter: string | null = null;
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-guard-priority": request.priority, ...headers },
      body: request.body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.arrayBuffer();
    status = response.status;
    fromModel = response.headers.get("x-demo-pool") !== null;
    shedReason = response.headers.get("x-guard-reason");
    retryAfter = response.headers.get("retry-after");
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
    retryAfterSeconds: retryAfter !== null && /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter) : null,
  };
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
