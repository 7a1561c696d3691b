// Clients as production has them: closed loop (a user sends the next request when the previous one
// has ended, after thinking) and retrying failed attempts. A logical request is what the user
// wanted; it succeeds when any of its attempts is answered 200.
import { setTimeout as sleep } from "node:timers/promises";
import { seededRandom } from "../../src/util/seeded-random.js";
import { type Sample, send } from "./traffic.js";
import type { BenchRequest, Priority, RetryPolicy } from "./workload.js";

/** Retries after the first attempt, for both retrying policies (the OpenAI SDK's default is 2, many clients use 3). */
export const MAX_RETRIES = 3;
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 8_000;
/** A longer advertised wait is not waited for (the OpenAI SDK's bound): the client falls back to its own backoff. */
const MAX_HONOURED_RETRY_AFTER_MS = 60_000;

/** Overload answers and no answer at all (client timeout, reset): what clients retry. */
export function retryable(status: number): boolean {
  return status === 429 || status === 503 || status === 504 || status === 0;
}

/** How long to wait before retry number `retry` (1 = the first retry). */
export function retryDelayMs(
  policy: RetryPolicy,
  retry: number,
  retryAfterMs: number | null,
  random: () => number,
): number {
  if (policy !== "backoff") return 0;
  // As the OpenAI SDKs do: the advertised wait exactly (spreading clients is the server's job, and
  // the guard jitters it), else their own exponential backoff with full jitter.
  if (retryAfterMs !== null && retryAfterMs >= 0 && retryAfterMs < MAX_HONOURED_RETRY_AFTER_MS) return retryAfterMs;
  return random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (retry - 1));
}

export interface LogicalSample {
  readonly priority: Priority;
  readonly ok: boolean;
  /** ok within the request's SLO, counted from the first attempt (the open-loop sweep's "good"). */
  readonly good: boolean;
  /** From the first attempt's send to the last attempt's answer, backoff waits included. */
  readonly ms: number;
  readonly workMs: number;
  readonly attempts: readonly Sample[];
}

/** One logical request: attempts until one is not retryable or the policy's retries are spent. */
export async function logicalRequest(
  url: string,
  request: BenchRequest,
  policy: RetryPolicy,
  attemptTimeoutMs: number,
  random: () => number,
  headers: Readonly<Record<string, string>> = {},
): Promise<LogicalSample> {
  const started = performance.now();
  const attempts: Sample[] = [];
  const retries = policy === "none" ? 0 : MAX_RETRIES;
  for (;;) {
    // Numbered as the OpenAI SDKs number every attempt (0 for the first): what a guard can tell retries by.
    const attempt = await send(url, request, attemptTimeoutMs, 0, {
      ...headers,
      "x-stainless-retry-count": String(attempts.length),
    });
    attempts.push(attempt);
    if (!retryable(attempt.status) || attempts.length > retries) break;
    const wait = retryDelayMs(policy, attempts.length, attempt.retryAfterMs, random);
    if (wait > 0) await sleep(wait);
  }
  const ms = performance.now() - started;
  const ok = attempts.some((attempt) => attempt.status === 200);
  return {
    priority: request.priority,
    ok,
    good: ok && ms <= request.sloMs,
    ms,
    workMs: request.workMs,
    attempts,
  };
}

/** A logical request of a closed-loop run, and whether it ended before the run's window closed. */
export interface WindowedSample extends LogicalSample {
  readonly endedInWindow: boolean;
}

export interface ClosedLoopClients {
  readonly users: number;
  /** Mean of the exponential think time between one logical request's end and the next one's start. */
  readonly thinkMs: number;
  readonly attemptTimeoutMs: number;
  readonly policy: RetryPolicy;
  readonly seed: number;
  /** Sent with every attempt (a tenant's credential, a claimed class, an injected failure). */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * `users` virtual users for `durationMs`: each thinks, sends a logical request, waits for its end
 * (retries included), and repeats. A logical request started within the window runs to its end, so
 * every one counted has all its attempts counted too; rates count those that ended within it (the
 * ones still running at its end are the ones missing at its start).
 */
export async function closedLoopUsers(
  url: string,
  clients: ClosedLoopClients,
  durationMs: number,
  next: (index: number) => BenchRequest,
): Promise<WindowedSample[]> {
  const samples: WindowedSample[] = [];
  const end = performance.now() + durationMs;
  let index = 0;
  await Promise.all(
    Array.from({ length: clients.users }, async (_, user) => {
      const random = seededRandom(clients.seed * 1_000 + user);
      // The first think is uniform over one mean think time, so users do not start in lockstep.
      let think = random() * clients.thinkMs;
      for (;;) {
        if (performance.now() + think >= end) return;
        await sleep(think);
        const sample = await logicalRequest(
          url,
          next(index++),
          clients.policy,
          clients.attemptTimeoutMs,
          random,
          clients.headers,
        );
        samples.push({ ...sample, endedInWindow: performance.now() <= end });
        think = -Math.log(1 - random()) * clients.thinkMs;
      }
    }),
  );
  return samples;
}
