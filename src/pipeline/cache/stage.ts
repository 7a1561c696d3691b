// The cache as a pipeline stage. Request path: decide cacheability, look up local → coalesce
// with an identical in-flight miss → Redis, answer hits. Response path (after contracts):
// store what may be stored and hand it to coalesced followers. A stream (SSE, or the route's NDJSON)
// passes through untouched while a bounded copy is kept, stored once it has ended as a finished
// answer, and replayed with its content type to requests that ask for a stream.

import { realTimers, type Timers } from "../../util/timers.js";
import { responseStream, streamFraming } from "../response-shape.js";
import {
  type ChunkStep,
  CONTINUE,
  type Exchange,
  type Outcome,
  type ResponseInfo,
  type Stage,
  type StageConfig,
  type StageDeps,
  type StageRun,
  type Step,
} from "../types.js";
import type { CacheSettings, RouteCacheConfig } from "./config.js";
import { allowListed } from "./entry.js";
import { scopeOf } from "./epochs.js";
import { parseBody, requestDigest } from "./key.js";
import type { CacheHit } from "./local-tier.js";
import { type CacheMetrics, createCacheMetrics } from "./metrics.js";
import {
  type BypassReason,
  bypassFromBody,
  bypassFromHeaders,
  type StoreSkipReason,
  skipFromResponseBody,
  skipFromResponseHeaders,
  wantsStream,
} from "./policy.js";
import { type PurgeResult, ResponseCache } from "./response-cache.js";
import { type Leadership, type Role, SingleFlight, type Wait } from "./single-flight.js";
import { streamEnd } from "./stream-end.js";

export const CACHE_HEADER = "x-guard-cache";
export const CACHE_TIER_HEADER = "x-guard-cache-tier";
export const CACHE_REASON_HEADER = "x-guard-cache-reason";

// Extra time asked of Envoy beyond a follower's wait, for the reply to travel back.
const DEADLINE_MARGIN_MS = 100;
// Startup may wait this long for Redis; after that the guard serves local-only and Redis joins when it can.
const WARM_UP_WAIT_MS = 2_000;

export interface CacheStageDeps extends StageDeps {
  /** Timer functions for single-flight waits and Redis timeouts; real timers by default. */
  readonly timers?: Timers;
}

export interface CacheStageConfig extends StageConfig<CacheSettings, RouteCacheConfig> {
  /** Envoy's message_timeout: a follower waiting longer must ask Envoy for more time. */
  readonly messageTimeoutMs: number;
  /** Each route's complexity tiers: a tier's pool keeps its own model version (epochs.ts, scopeOf). */
  readonly tiers: ReadonlyMap<string, readonly string[]>;
  /** Each rollout route's pools (routes[].canary): each keeps its own model version too. */
  readonly pools: ReadonlyMap<string, readonly string[]>;
}

export interface CacheStage extends Stage {
  /** Admin purge: undefined when no route of that name has the cache enabled. */
  purgeRoute(route: string): Promise<PurgeResult | undefined>;
  /** Call at startup before serving: connects Redis (waiting at most waitMs) and loads shared epochs. */
  warmUp(waitMs?: number): Promise<void>;
  /** Closes the Redis connection (drain). */
  close(): Promise<void>;
}

interface RouteSettings {
  readonly config: RouteCacheConfig;
  readonly excludeFields: ReadonlySet<string>;
}

interface Shared {
  readonly cache: ResponseCache;
  readonly flights: SingleFlight;
  readonly metrics: CacheMetrics;
  readonly messageTimeoutMs: number;
}

export function createCacheStage(config: CacheStageConfig, deps: CacheStageDeps): CacheStage {
  const routes = new Map<string, RouteSettings>();
  for (const [name, route] of config.routes) {
    if (route.enabled) routes.set(name, { config: route, excludeFields: new Set(route.excludeFields) });
  }
  const metrics = createCacheMetrics(deps.registry);
  const timers = deps.timers ?? realTimers;
  const shared: Shared = {
    cache: new ResponseCache(config.section, { now: deps.now, log: deps.log, metrics, timers }),
    flights: new SingleFlight(timers),
    metrics,
    messageTimeoutMs: config.messageTimeoutMs,
  };
  return {
    name: "cache",
    start(exchange) {
      const settings = routes.get(exchange.route.name);
      return settings === undefined ? undefined : new CacheRun(exchange, settings, shared);
    },
    async purgeRoute(route) {
      return routes.has(route) ? shared.cache.purgeRoute(route) : undefined;
    },
    // Every route's purge token and every pool's version are read before serving, so the first
    // answers of each pool already go to the shared tier.
    warmUp: (waitMs = WARM_UP_WAIT_MS) =>
      shared.cache.warmUp(
        [...routes.keys()].flatMap((route) => [
          route,
          ...poolScopes(config.pools.get(route) ?? [], config.tiers.get(route) ?? []).map((pool) =>
            scopeOf(route, pool),
          ),
        ]),
        waitMs,
      ),
    close: () => shared.cache.close(),
  };
}

type RunState =
  | { readonly kind: "deciding" }
  | { readonly kind: "bypass"; readonly reason: BypassReason }
  | { readonly kind: "answered" }
  | { readonly kind: "waiting"; readonly wait: Wait }
  /** Went upstream after a lookup; the response is stored unless a check says otherwise. */
  | { readonly kind: "upstream"; readonly digest: string; readonly leadership: Leadership | undefined }
  /** The upstream's event stream is passing through; `copy` holds what the client got so far. */
  | {
      readonly kind: "streaming";
      readonly digest: string;
      readonly leadership: Leadership | undefined;
      readonly copy: StreamCopy;
    }
  | { readonly kind: "settled" };

type Storing = Extract<RunState, { kind: "upstream" | "streaming" }>;

/** Copies of a stream's chunks: each chunk is a view into its gRPC message, which must not be kept. */
class StreamCopy {
  readonly chunks: Uint8Array[] = [];
  bytes = 0;

  add(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(new Uint8Array(chunk));
    this.bytes += chunk.length;
  }

  whole(): Uint8Array {
    const whole = new Uint8Array(this.bytes);
    let offset = 0;
    for (const chunk of this.chunks) {
      whole.set(chunk, offset);
      offset += chunk.length;
    }
    return whole;
  }
}

class CacheRun implements StageRun {
  #state: RunState = { kind: "deciding" };
  #response: ResponseInfo | undefined;
  /** The request asks for an event stream: keyed apart, answered only with a stored stream, never coalesced. */
  #stream = false;
  #ended = false;

  constructor(
    private readonly exchange: Exchange,
    private readonly settings: RouteSettings,
    private readonly shared: Shared,
  ) {}

  get #route(): string {
    return this.exchange.route.name;
  }

  /** Where this request's model version is tracked: the route, or the pool its rollout pool and tier picked. */
  get #scope(): string {
    const { pool, tier } = this.exchange;
    return scopeOf(this.exchange.route.name, pool === undefined ? tier : tier === undefined ? pool : `${pool}.${tier}`);
  }

  onRequestHeaders(): Step | Promise<Step> {
    const reason = bypassFromHeaders(this.exchange.request.headers);
    if (reason !== undefined) return this.#bypass(reason);
    if (this.exchange.request.endOfStream) return this.#lookup(new Uint8Array(0));
    return { type: "continue", needs: { requestBody: true } };
  }

  onRequestBody(body: Uint8Array): Step | Promise<Step> {
    // Another stage may have asked for the body of a request this run already bypassed at its headers.
    return this.#state.kind === "deciding" ? this.#lookup(body) : CONTINUE;
  }

  onResponseHeaders(response: ResponseInfo): Step {
    this.#response = response;
    const state = this.#state;
    if (state.kind === "bypass") {
      return {
        type: "continue",
        edits: { setHeaders: { [CACHE_HEADER]: "bypass", [CACHE_REASON_HEADER]: state.reason } },
      };
    }
    if (state.kind !== "upstream") return CONTINUE;
    const skip = skipFromResponseHeaders(response, this.settings.config, this.#stream, this.exchange.route);
    if (skip !== undefined) this.#skipStore(state, skip);
    else if (this.#stream) {
      if (response.endOfStream) this.#skipStore(state, "incomplete");
      else
        this.#state = { kind: "streaming", digest: state.digest, leadership: state.leadership, copy: new StreamCopy() };
    } else if (response.endOfStream) this.#storeOrSkip(state, new Uint8Array(0));
    const next = this.#state.kind;
    return {
      type: "continue",
      edits: { setHeaders: { [CACHE_HEADER]: "miss" } },
      // A stream is watched as it passes ("whole" would have Envoy hold it all back from the
      // client); a response that will not be stored need not be held for this stage at all.
      responseBody: next === "streaming" ? "stream" : next === "upstream" ? "whole" : "none",
    };
  }

  onResponseBody(body: Uint8Array): Step {
    const state = this.#state;
    if (state.kind === "upstream") this.#storeOrSkip(state, body);
    // Another stage needed the whole stream at once: it is the stream's only chunk.
    else if (state.kind === "streaming") this.#copyChunk(state, body, true);
    return CONTINUE;
  }

  /** The chunk goes on as it came, at once; the cache only keeps a copy of it. */
  onResponseChunk(chunk: Uint8Array, endOfStream: boolean): ChunkStep {
    const state = this.#state;
    if (state.kind === "streaming") this.#copyChunk(state, chunk, endOfStream);
    return { type: "forward", bytes: chunk };
  }

  onEnd(outcome: Outcome): void {
    this.#ended = true;
    const state = this.#state;
    // Every answer of the model tells which version serves this pool now, stored or not (a bypassed
    // request's too, when its response headers came): entries of another version stop being served
    // as soon as any answer shows the change. Read as #store reads it, so both agree.
    const response = this.#response;
    if (response !== undefined && response.status >= 200 && response.status < 300)
      this.shared.cache.observeVersion(this.#route, this.#scope, this.#modelVersion(response));
    // Whatever ended the exchange (error, reset, cancel), followers must not wait for a response that will not come.
    if (state.kind === "streaming") {
      // The stream never reached its last chunk here: the client left, or a stage inside this one
      // cut it (then this stage never sees the cut chunk).
      const reason: StoreSkipReason =
        this.exchange.contract === "violated" ? "contract_violated" : outcome.cancelled ? "cancelled" : "incomplete";
      this.#skipStore(state, reason);
    }
    if (state.kind === "upstream") {
      // An enforced contract replaced the response before this stage's body hook could see it.
      if (this.exchange.contract === "violated")
        this.shared.metrics.storeSkipped.inc({ route: this.#route, reason: "contract_violated" });
      state.leadership?.settle(undefined);
    }
    if (state.kind === "waiting") state.wait.abandon();
    this.#state = { kind: "settled" };
  }

  #bypass(reason: BypassReason): Step {
    this.shared.metrics.bypass.inc({ route: this.#route, reason });
    this.#state = { kind: "bypass", reason };
    return this.settings.config.annotateBypass ? { type: "continue", needs: { responseHeaders: true } } : CONTINUE;
  }

  async #lookup(bodyBytes: Uint8Array): Promise<Step> {
    const { request } = this.exchange;
    const config = this.settings.config;
    const body = parseBody(bodyBytes);
    const reason = bypassFromBody(body, request.headers, config);
    if (reason !== undefined) return this.#bypass(reason);
    this.#stream = wantsStream(body, request.headers, this.exchange.route);
    const digest = requestDigest({
      route: this.#route,
      method: request.method,
      path: request.path,
      tenant: this.exchange.tenant,
      vary: config.varyHeaders.map((name) => request.headers.get(name) ?? ""),
      body,
      excludeFields: this.settings.excludeFields,
      stream: this.#stream,
    });
    const { cache, flights, metrics } = this.shared;
    const key = cache.lookupKey(this.#route, this.#scope, digest);
    const local = this.#sameForm(cache.lookupLocal(this.#route, this.#scope, key));
    if (local !== undefined) return this.#answer(local, "local");

    let leadership: Leadership | undefined;
    if (config.singleFlightWaitMs > 0) {
      const role = flights.join(key);
      if (role.role === "leader") leadership = role.leadership;
      // A follower's answer is one body, sent once the leader's stream has ended: waiting would
      // put a stream's first token after the leader's last. Streams go upstream instead.
      else if (this.#stream) metrics.coalesced.inc({ route: this.#route, outcome: "stream_not_coalesced" });
      else return this.#follow(role, digest);
    }
    // Registered as leader before asking Redis, so identical requests arriving meanwhile wait for this lookup too.
    this.#state = { kind: "upstream", digest, leadership };
    const fromRedis = this.#sameForm(await cache.lookupShared(this.#route, this.#scope, key));
    if (this.#ended) return CONTINUE;
    if (fromRedis !== undefined) {
      leadership?.settle(fromRedis);
      return this.#answer(fromRedis, "redis");
    }
    metrics.misses.inc({ route: this.#route });
    return { type: "continue", needs: { responseHeaders: true, responseBody: true } };
  }

  /**
   * The hit, when its form (stream or not) is the one the request asked for. The key already
   * keeps the two apart; this is the second lock on that door. A mismatch is a miss.
   */
  #sameForm<T extends CacheHit>(hit: T | undefined): T | undefined {
    if (hit === undefined) return undefined;
    const streamed = streamFraming(hit.response.headers["content-type"], this.exchange.route) !== undefined;
    return streamed === this.#stream ? hit : undefined;
  }

  async #follow(role: Extract<Role, { role: "follower" }>, digest: string): Promise<Step> {
    const waitMs = this.settings.config.singleFlightWaitMs;
    if (waitMs + DEADLINE_MARGIN_MS > this.shared.messageTimeoutMs)
      this.exchange.extendDeadline(waitMs + DEADLINE_MARGIN_MS);
    const wait = role.wait(waitMs);
    this.#state = { kind: "waiting", wait };
    const result = await wait.result;
    if (result.kind === "abandoned") return CONTINUE;
    this.shared.metrics.coalesced.inc({ route: this.#route, outcome: result.kind });
    if (result.kind === "served") return this.#answer(result.hit, "coalesced");
    // The leader produced nothing shareable in time: go upstream independently, and store if that works.
    this.#state = { kind: "upstream", digest, leadership: undefined };
    this.shared.metrics.misses.inc({ route: this.#route });
    return { type: "continue", needs: { responseHeaders: true, responseBody: true } };
  }

  #answer(hit: CacheHit, tier: "local" | "redis" | "coalesced"): Step {
    if (tier !== "coalesced") this.shared.metrics.hits.inc({ route: this.#route, tier });
    this.#state = { kind: "answered" };
    return {
      type: "reply",
      reply: {
        status: hit.response.status,
        headers: {
          ...hit.response.headers,
          [CACHE_HEADER]: "hit",
          [CACHE_TIER_HEADER]: tier,
          age: String(Math.floor(hit.ageMs / 1000)),
        },
        body: hit.response.body,
        reason: "cache.hit",
      },
    };
  }

  #storeOrSkip(state: Extract<RunState, { kind: "upstream" }>, body: Uint8Array): void {
    const skip = skipFromResponseBody(body, this.exchange, this.settings.config);
    if (skip !== undefined) this.#skipStore(state, skip);
    // A copy into a buffer of its own: the body is a view into the whole decoded gRPC message (a
    // Node Buffer, whose slice() is another view), and the entry must not keep that alive.
    else this.#store(state, new Uint8Array(body));
  }

  /**
   * Keeps a copy of a passing chunk, within maxEntryBytes; at the stream's last chunk, stores it if
   * it ended as a finished answer. The contracts stage (inside this one) has judged it by then.
   */
  #copyChunk(state: Extract<RunState, { kind: "streaming" }>, chunk: Uint8Array, endOfStream: boolean): void {
    const { copy } = state;
    if (copy.bytes + chunk.length > this.settings.config.maxEntryBytes) {
      this.#skipStore(state, "too_large");
      return;
    }
    copy.add(chunk);
    if (!endOfStream) return;
    if (this.exchange.contract === "violated") {
      this.#skipStore(state, "contract_violated");
      return;
    }
    const body = copy.whole();
    const stream = this.#response === undefined ? undefined : responseStream(this.#response.headers, this.exchange);
    const end = stream === undefined ? "incomplete" : streamEnd(body, stream);
    if (end === "complete") this.#store(state, body);
    else this.#skipStore(state, end === "error" ? "stream_error" : "incomplete");
  }

  /** `body` is the stage's own copy. */
  #store(state: Storing, body: Uint8Array): void {
    // Set by onResponseHeaders, which Envoy always sends before the body this run asked for.
    const response = this.#response;
    if (response === undefined) {
      this.#skipStore(state, "status");
      return;
    }
    const config = this.settings.config;
    const headers = allowListed(response.headers, config.allowHeaders);
    // A replayed stream must say it is one whatever the allow-list, and lookups check the form.
    if (this.#stream) headers["content-type"] = response.headers.get("content-type") ?? "text/event-stream";
    const stored = this.shared.cache.store(
      { route: this.#route, scope: this.#scope },
      state.digest,
      { status: response.status, headers, body },
      config.ttlSeconds * 1000,
      this.#modelVersion(response),
    );
    this.shared.metrics.stores.inc({ route: this.#route });
    state.leadership?.settle(stored);
    this.#state = { kind: "settled" };
  }

  /**
   * The version the contracts stage read (a header or a body field), else the one the response's
   * header names; as stated, not as labelled, so versions past the label bound stay apart.
   */
  #modelVersion(response: ResponseInfo): string | undefined {
    return this.exchange.statedModelVersion ?? response.headers.get(this.settings.config.versionHeader);
  }

  #skipStore(state: Storing, reason: StoreSkipReason): void {
    this.shared.metrics.storeSkipped.inc({ route: this.#route, reason });
    state.leadership?.settle(undefined);
    this.#state = { kind: "settled" };
  }
}

/** The pools a route's requests can reach: each rollout pool at each tier, or either alone. */
function poolScopes(pools: readonly string[], tiers: readonly string[]): string[] {
  if (pools.length === 0) return [...tiers];
  if (tiers.length === 0) return [...pools];
  return pools.flatMap((pool) => tiers.map((tier) => `${pool}.${tier}`));
}
