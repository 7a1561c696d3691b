// A tenant's use of its budget over the last minute: two fixed one-minute buckets, the previous one
// weighted by the share of it still inside the sliding minute (the estimate Cloudflare and most
// gateways use: exact under steady traffic, never more than one bucket off). Kept in process;
// tenants idle for two minutes are forgotten, so memory follows the active tenants.

const MINUTE_MS = 60_000;

/** Where `now` (wall-clock ms) falls: its minute, the time left in it, the previous minute's weight. */
export interface MinutePosition {
  readonly minute: number;
  readonly resetMs: number;
  /** The share of the previous minute still inside the sliding minute ending now. */
  readonly previousWeight: number;
}

export function minuteAt(now: number): MinutePosition {
  const minute = Math.floor(now / MINUTE_MS);
  const resetMs = (minute + 1) * MINUTE_MS - now;
  return { minute, resetMs, previousWeight: resetMs / MINUTE_MS };
}

export interface Usage {
  readonly requests: number;
  readonly tokens: number;
  /** Ms until the current bucket ends: the earliest the window can forget much. */
  readonly resetMs: number;
}

interface Buckets {
  minute: number;
  requests: number;
  tokens: number;
  previousRequests: number;
  previousTokens: number;
}

export class BudgetWindows {
  readonly #now: () => number;
  readonly #buckets = new Map<string, Buckets>();
  #sweptMinute = Number.NEGATIVE_INFINITY;

  /** now: wall-clock ms (sidecars sharing budgets must agree on minute boundaries). */
  constructor(now: () => number) {
    this.#now = now;
  }

  get size(): number {
    return this.#buckets.size;
  }

  usage(key: string): Usage {
    const { minute, resetMs, previousWeight } = minuteAt(this.#now());
    const buckets = this.#current(key, minute);
    if (buckets === undefined) return { requests: 0, tokens: 0, resetMs };
    return {
      requests: buckets.requests + buckets.previousRequests * previousWeight,
      tokens: buckets.tokens + buckets.previousTokens * previousWeight,
      resetMs,
    };
  }

  add(key: string, requests: number, tokens: number): void {
    const { minute } = minuteAt(this.#now());
    this.#sweep(minute);
    let buckets = this.#current(key, minute);
    if (buckets === undefined) {
      buckets = { minute, requests: 0, tokens: 0, previousRequests: 0, previousTokens: 0 };
      this.#buckets.set(key, buckets);
    }
    buckets.requests += requests;
    buckets.tokens += tokens;
  }

  /** The key's buckets rolled forward to `minute`; undefined when it has none left. */
  #current(key: string, minute: number): Buckets | undefined {
    const buckets = this.#buckets.get(key);
    if (buckets === undefined || buckets.minute === minute) return buckets;
    if (buckets.minute === minute - 1) {
      buckets.previousRequests = buckets.requests;
      buckets.previousTokens = buckets.tokens;
    } else {
      buckets.previousRequests = 0;
      buckets.previousTokens = 0;
    }
    buckets.minute = minute;
    buckets.requests = 0;
    buckets.tokens = 0;
    return buckets;
  }

  /** Once a minute: tenants with nothing in either bucket are dropped. */
  #sweep(minute: number): void {
    if (minute === this.#sweptMinute) return;
    this.#sweptMinute = minute;
    for (const [key, buckets] of this.#buckets) {
      if (buckets.minute < minute - 1) this.#buckets.delete(key);
    }
  }
}
