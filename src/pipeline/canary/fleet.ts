// Quarantines across sidecars (canary.redis): per candidate, three keys in the shared Redis —
//   <prefix>g:{<route>:<pool>}  the serving generation, bumped by every release,
//   <prefix>q:{<route>:<pool>}  the quarantine decided in this generation (first decider wins), with
//                               its reason, rate, lower bound, maximum, evidence and wall-clock time,
//   <prefix>n:{<route>:<pool>}  a hash: each sidecar's answer counts in this generation.
// The candidate is the hash tag: a Redis Cluster runs the script only on keys of one slot.
// One script per candidate publishes this sidecar's counts and quarantine and reads the fleet's,
// atomically, so a release (which bumps the generation and drops the other two keys) can never be
// undone by a sidecar still holding the quarantine it replaced. Redis is an optimisation: while it
// is away each sidecar judges its own answers, and nothing on the request path waits for it.
import type { Logger } from "pino";
import type { RedisTarget } from "../../config-kit/redis.js";
import type { Timers } from "../../util/timers.js";
import { SharedRedis, type SharedRedisEvents } from "../shared-redis.js";
import type { Quarantine } from "./candidate.js";
import { addWindows, EMPTY_WINDOW, type HealthWindow } from "./health.js";

export type CanaryFleetOp = "sync";

export interface CanaryFleetSettings {
  readonly target: RedisTarget;
  readonly timeoutMs: number;
  readonly probeIntervalMs: number;
  readonly keyPrefix: string;
}

export interface CanaryFleetDeps {
  readonly now: () => number;
  /** Wall-clock ms: a quarantine's time crosses sidecars, whose monotonic clocks do not agree. */
  readonly wall: () => number;
  readonly log: Logger;
  readonly timers: Timers;
  readonly events: SharedRedisEvents<CanaryFleetOp>;
}

/** What this sidecar knows of one candidate, published at a sync. */
export interface SidecarView {
  readonly route: string;
  readonly pool: string;
  readonly generation: number;
  /** A release made here that the fleet has not heard of: it bumps the generation it was made in. */
  readonly releasing: boolean;
  readonly window: HealthWindow;
  /** A quarantine this sidecar decided (not one it adopted). */
  readonly quarantine: Quarantine | undefined;
}

/** What the fleet knows of one candidate after a sync. */
export interface FleetView {
  readonly generation: number;
  /** The other sidecars' answers in this generation. */
  readonly others: HealthWindow;
  readonly quarantine: Omit<Quarantine, "healthyProbes" | "source"> | undefined;
}

// Keys of a rollout nobody serves any more go after a day; a live rollout's are refreshed per sync.
const KEY_TTL_MS = 86_400_000;

const SYNC_SCRIPT = `
local generation = tonumber(redis.call('GET', KEYS[1]) or '0')
local mine = tonumber(ARGV[2])
if ARGV[3] == '1' and generation == mine then
  generation = generation + 1
  redis.call('DEL', KEYS[2], KEYS[3])
  mine = generation
elseif generation < mine then
  -- Redis lost the keys (a restart, an eviction): the highest generation a sidecar knows stands.
  generation = mine
end
redis.call('SET', KEYS[1], generation, 'PX', ARGV[6])
if mine == generation then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[3], ARGV[6])
  if ARGV[5] ~= '' then redis.call('SET', KEYS[2], ARGV[5], 'NX', 'PX', ARGV[6]) end
end
return {generation, redis.call('GET', KEYS[2]) or false, redis.call('HGETALL', KEYS[3])}
`;

interface PublishedQuarantine {
  readonly decidedAt: number;
  readonly reason: "violations" | "errors";
  readonly rate: number;
  readonly lowerBound: number;
  readonly max: number;
  readonly evidence: HealthWindow;
}

export class CanaryFleet {
  readonly #redis: SharedRedis<CanaryFleetOp>;
  readonly #settings: CanaryFleetSettings;
  readonly #deps: CanaryFleetDeps;
  readonly #sidecar: string;

  /** `sidecar`: this guard's id in the counts hash, the same across its reloads. */
  constructor(settings: CanaryFleetSettings, deps: CanaryFleetDeps, sidecar: string) {
    this.#settings = settings;
    this.#deps = deps;
    this.#sidecar = sidecar;
    this.#redis = new SharedRedis<CanaryFleetOp>(settings, {
      ...deps,
      purpose: "canary",
      fallback: "each sidecar judges its own answers",
    });
    this.#redis.client.defineCommand("canarySync", { numberOfKeys: 3, lua: SYNC_SCRIPT });
  }

  /** Publishes what this sidecar knows and reads the fleet's, per candidate; undefined when Redis failed. */
  async sync(views: readonly SidecarView[]): Promise<readonly FleetView[] | undefined> {
    if (views.length === 0) return [];
    const client = this.#redis.client as unknown as CanaryClient;
    // One script call per candidate, not one pipeline: candidates hash to different slots. Any
    // failed call fails the sync (call() counts it), as a failed reply in a pipeline did.
    const replies = await this.#redis.call("", "sync", () =>
      Promise.all(
        views.map((view) =>
          client.canarySync(
            ...["g", "q", "n"].map((kind) => `${this.#settings.keyPrefix}${kind}:{${view.route}:${view.pool}}`),
            this.#sidecar,
            String(view.generation),
            view.releasing ? "1" : "0",
            JSON.stringify(view.window),
            view.quarantine === undefined ? "" : JSON.stringify(this.#published(view.quarantine)),
            String(KEY_TTL_MS),
          ),
        ),
      ),
    );
    if (replies === undefined) return undefined;
    return replies.map((reply) => this.#fleetView(reply));
  }

  /** Resolves true once connected (at most after waitMs). */
  connected(waitMs: number): Promise<boolean> {
    return this.#redis.connected(waitMs);
  }

  close(): Promise<void> {
    return this.#redis.close();
  }

  #published(quarantine: Quarantine): PublishedQuarantine {
    const { verdict, evidence, since } = quarantine;
    return {
      decidedAt: this.#deps.wall() - (this.#deps.now() - since),
      reason: verdict.reason,
      rate: verdict.rate,
      lowerBound: verdict.lowerBound,
      max: verdict.max,
      evidence,
    };
  }

  #fleetView([generation, quarantine, counts]: SyncReply): FleetView {
    let others = EMPTY_WINDOW;
    for (let index = 0; index + 1 < counts.length; index += 2) {
      if (counts[index] === this.#sidecar) continue;
      const window = parseWindow(counts[index + 1]);
      if (window !== undefined) others = addWindows(others, window);
    }
    return { generation: Number(generation), others, quarantine: this.#adopted(quarantine) };
  }

  #adopted(text: string | null): FleetView["quarantine"] {
    const published = parseJson<PublishedQuarantine>(text);
    const evidence = parseWindow(published?.evidence);
    if (published === undefined || evidence === undefined) return undefined;
    const { reason, rate, lowerBound, max, decidedAt } = published;
    if (reason !== "violations" && reason !== "errors") return undefined;
    if (![rate, lowerBound, max, decidedAt].every(Number.isFinite)) return undefined;
    return {
      since: this.#deps.now() - Math.max(0, this.#deps.wall() - decidedAt),
      verdict: { healthy: false, reason, rate, lowerBound, max },
      evidence,
    };
  }
}

type SyncReply = [generation: number, quarantine: string | null, counts: string[]];

interface CanaryClient {
  canarySync(...args: string[]): Promise<SyncReply>;
}

function parseJson<T>(text: string | null | undefined): T | undefined {
  if (text === null || text === undefined) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

/** Counts another sidecar published; undefined for anything unreadable (another release, corruption). */
function parseWindow(value: unknown): HealthWindow | undefined {
  const window = typeof value === "string" ? parseJson<Partial<HealthWindow>>(value) : (value as Partial<HealthWindow>);
  if (window === undefined || window === null) return undefined;
  const { answers, violations, errors } = window;
  const counts = [answers, violations, errors];
  if (!counts.every((count) => Number.isInteger(count) && (count as number) >= 0)) return undefined;
  return { answers: answers as number, violations: violations as number, errors: errors as number };
}
