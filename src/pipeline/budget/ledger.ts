// Where tenants' budgets are counted: in process (BudgetWindows), or in Redis shared by every
// sidecar, checked and counted in one atomic script so two sidecars cannot both take the last
// request. Redis down or slow: the check is decided from this sidecar's own counts, which are
// always kept as well.
import type { Logger } from "pino";
import { redisTarget } from "../../config-kit/redis.js";
import type { Timers } from "../../util/timers.js";
import { SharedRedis, type SharedRedisEvents } from "../shared-redis.js";
import type { BudgetConfig } from "./config.js";
import { BudgetWindows, minuteAt, type Usage } from "./window.js";

export interface Limits {
  readonly requestsPerMinute?: number | undefined;
  readonly tokensPerMinute?: number | undefined;
}

export interface Verdict {
  /** The tenant's use including this request when it was admitted. */
  readonly usage: Usage;
  /** Which limit the request would exceed; undefined: admitted and counted. */
  readonly over?: "requests" | "tokens";
  /** Decided from Redis (shared by every sidecar) or from this sidecar alone. */
  readonly source: "shared" | "local";
}

/** The ledger's Redis calls (a failure may also be "connect"). */
export type RedisOp = "admit" | "tokens";

export interface LedgerDeps {
  readonly now: () => number;
  readonly wallClock: () => number;
  readonly log: Logger;
  readonly timers: Timers;
  readonly redisEvents: SharedRedisEvents<RedisOp>;
}

/** The decision on this sidecar's own counts; ADMIT_SCRIPT makes the same one on the shared counts. */
export function overOf(usage: Pick<Usage, "requests" | "tokens">, limits: Limits): Verdict["over"] {
  if (limits.requestsPerMinute !== undefined && usage.requests + 1 > limits.requestsPerMinute) return "requests";
  if (limits.tokensPerMinute !== undefined && usage.tokens >= limits.tokensPerMinute) return "tokens";
  return undefined;
}

// KEYS: this minute's hash, the previous minute's. ARGV: the previous minute's weight, the request
// limit (0: none), the token limit (0: none), prompt tokens, the hash's TTL in seconds. Returns the
// use before this request (as strings: Lua numbers would reach the client truncated) and what it
// exceeds ("" when it was admitted and counted).
const ADMIT_SCRIPT = `
local weight = tonumber(ARGV[1])
local requests = tonumber(redis.call('HGET', KEYS[1], 'r') or '0') + tonumber(redis.call('HGET', KEYS[2], 'r') or '0') * weight
local tokens = tonumber(redis.call('HGET', KEYS[1], 't') or '0') + tonumber(redis.call('HGET', KEYS[2], 't') or '0') * weight
local rpm = tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
local over = ''
if rpm > 0 and requests + 1 > rpm then over = 'requests'
elseif tpm > 0 and tokens >= tpm then over = 'tokens'
else
  redis.call('HINCRBYFLOAT', KEYS[1], 'r', 1)
  if tonumber(ARGV[4]) > 0 then redis.call('HINCRBYFLOAT', KEYS[1], 't', ARGV[4]) end
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
return {tostring(requests), tostring(tokens), over}
`;

/** A minute's hash lives through the next minute, where it is the previous one. */
const BUCKET_TTL_SECONDS = 180;

export class BudgetLedger {
  readonly windows: BudgetWindows;
  readonly #deps: LedgerDeps;
  readonly #redis: SharedRedis<RedisOp> | undefined;
  readonly #keyPrefix: string;

  constructor(config: BudgetConfig, deps: LedgerDeps) {
    this.#deps = deps;
    this.windows = new BudgetWindows(deps.wallClock);
    this.#keyPrefix = config.redis.keyPrefix;
    const target = redisTarget(config.redis);
    this.#redis =
      target === undefined
        ? undefined
        : new SharedRedis<RedisOp>(
            { ...config.redis, target },
            {
              ...deps,
              purpose: "budget",
              fallback: "each sidecar counts its tenants' budgets alone",
              events: deps.redisEvents,
            },
          );
  }

  /** Checks the tenant's budget and, when the request fits, counts it with its prompt tokens. */
  async admit(key: string, limits: Limits, promptTokens: number): Promise<Verdict> {
    const shared = this.#redis?.usable === true ? await this.#sharedAdmit(key, limits, promptTokens) : undefined;
    const local = this.windows.usage(key);
    const over = shared === undefined ? overOf(local, limits) : shared.over;
    if (over === undefined) this.windows.add(key, 1, promptTokens);
    const usage = shared?.usage ?? (over === undefined ? this.windows.usage(key) : local);
    return { usage, source: shared === undefined ? "local" : "shared", ...(over === undefined ? {} : { over }) };
  }

  /** Completion tokens, once known: fire and forget. */
  addTokens(key: string, tokens: number): void {
    this.windows.add(key, 0, tokens);
    const redis = this.#redis;
    if (redis?.usable !== true) return;
    const bucket = this.#bucketKey(key, minuteAt(this.#deps.wallClock()).minute);
    void redis.call(key, "tokens", () =>
      redis.client.pipeline().hincrbyfloat(bucket, "t", tokens).expire(bucket, BUCKET_TTL_SECONDS).exec(),
    );
  }

  /** Resolves true once Redis is connected (at most after waitMs), or when there is none to wait for. */
  connected(waitMs: number): Promise<boolean> {
    return this.#redis?.connected(waitMs) ?? Promise.resolve(true);
  }

  close(): Promise<void> {
    return this.#redis?.close() ?? Promise.resolve();
  }

  async #sharedAdmit(
    key: string,
    limits: Limits,
    promptTokens: number,
  ): Promise<{ usage: Usage; over: Verdict["over"] } | undefined> {
    const redis = this.#redis;
    if (redis === undefined) return undefined;
    const { minute, resetMs, previousWeight } = minuteAt(this.#deps.wallClock());
    const reply = await redis.call(key, "admit", () =>
      redis.client.eval(
        ADMIT_SCRIPT,
        2,
        this.#bucketKey(key, minute),
        this.#bucketKey(key, minute - 1),
        String(previousWeight),
        String(limits.requestsPerMinute ?? 0),
        String(limits.tokensPerMinute ?? 0),
        String(promptTokens),
        String(BUCKET_TTL_SECONDS),
      ),
    );
    if (!Array.isArray(reply) || reply.length !== 3) return undefined;
    const [requests, tokens, over] = reply.map(String) as [string, string, string];
    const admitted = over === "";
    return {
      usage: {
        requests: Number(requests) + (admitted ? 1 : 0),
        tokens: Number(tokens) + (admitted ? promptTokens : 0),
        resetMs,
      },
      over: over === "requests" || over === "tokens" ? over : undefined,
    };
  }

  /**
   * Keys are per minute; the tenant part is already a hash (identity), never a raw credential. It
   * is the hash tag too: ADMIT_SCRIPT reads two minutes of one tenant, which a Redis Cluster runs
   * only on keys of one slot, while different tenants still spread over the shards.
   */
  #bucketKey(key: string, minute: number): string {
    return `${this.#keyPrefix}{${key}}:${minute}`;
  }
}
