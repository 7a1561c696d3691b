// What the load-shedding bench offers: the set-ups compared, the server being protected, and the
// seeded stream of requests (priority mix and a realistic spread of sizes).
import { gaussian, seededRandom } from "../../src/util/seeded-random.js";

/**
 * "critical_only" is a measurement, not a protection: Envoy alone, and of each point's schedule only
 * the critical requests are sent (same sizes, same send times, the others' slots left empty). That is
 * what an oracle admission would give that shed every non-critical request at no cost and nothing
 * critical, so its critical p99 bounds from below what any admission keeping all critical requests
 * (in the server's FIFO order) can reach on this server.
 */
export type Variant = "none" | "adaptive_concurrency" | "guard" | "critical_only";
export type Priority = "critical" | "standard" | "sheddable";
export const PRIORITIES: readonly Priority[] = ["critical", "standard", "sheddable"];

/** The demo model as a batching server: `capacity` slots, per-request work from its size. */
export interface ServerModel {
  readonly capacity: number;
  readonly baseLatencyMs: number;
  readonly perTokenMs: number;
  readonly perKbMs: number;
  readonly batchPenalty: number;
}

export interface ShedBenchOptions {
  readonly variants: readonly Variant[];
  /** Offered load as multiples of the measured capacity. */
  readonly points: readonly number[];
  readonly pointMs: number;
  readonly warmUpMs: number;
  readonly calibrationMs: number;
  /**
   * Requests sent one at a time on the idle stack to measure its unloaded latency. A p99 needs
   * about a hundred samples: a few seconds' worth (~15) only shows the p90-p95 of the size spread.
   */
  readonly unloadedSamples: number;
  readonly clientTimeoutMs: number;
  readonly server: ServerModel;
  /** A response is good when it is a 200 within sloFactor × its unloaded work time (at least sloFloorMs). */
  readonly sloFactor: number;
  readonly sloFloorMs: number;
  readonly mix: Readonly<Record<Priority, number>>;
  readonly seed: number;
  /** Closed-loop retrying clients, run after the open-loop points in every set-up but critical_only. */
  readonly retry: RetryOptions;
  /** Replaces top-level keys of the guard's embedded default config (e.g. `admission`). */
  readonly guardConfig?: Readonly<Record<string, unknown>>;
  readonly log?: (line: string) => void;
}

/**
 * How clients retry an attempt answered 429, 503, 504 or not at all (clients.ts). none: one attempt.
 * immediate: retry at once. backoff: the wait the answer asks for (retry-after-ms, else Retry-After)
 * when it has one, as the OpenAI SDKs do, else exponential backoff with full jitter.
 */
export type RetryPolicy = "none" | "backoff" | "immediate";
export const RETRY_POLICIES: readonly RetryPolicy[] = ["none", "backoff", "immediate"];

/** Clients beside the users of a retry scenario, described in companions.ts. */
export const COMPANIONS = ["storm", "spoof", "tenants", "tenant10x"] as const;
export type Companion = (typeof COMPANIONS)[number];

/** Closed-loop users offering `load` × capacity at unloaded latency, retrying by `policy`. */
export interface RetryScenario {
  readonly policy: RetryPolicy;
  readonly load: number;
  /** A process spinning on one core beside the stack for the run (the guard's host is busy). */
  readonly cpuHog?: boolean;
  /** Clients beside (or instead of) the plain users: a pool in a 5xx storm, a spoofer, tenants (companions.ts). */
  readonly companion?: Companion;
}

export interface RetryOptions {
  readonly scenarios: readonly RetryScenario[];
  /** Every scenario runs this many times per set-up; the report gives each metric's worst run. */
  readonly repeats: number;
  readonly scenarioMs: number;
  /**
   * Mean think time of a user between two logical requests. Users are sized so that they offer
   * the scenario's load at unloaded latency: users = load × capacity/s × (think + mean work) / 1000.
   */
  readonly thinkMs: number;
  /** The client's timeout per attempt; a timed-out attempt is retried like a 504. */
  readonly attemptTimeoutMs: number;
}

export const DEFAULT_OPTIONS: ShedBenchOptions = {
  variants: ["none", "adaptive_concurrency", "guard", "critical_only"],
  points: [0.5, 1, 2, 4],
  pointMs: 12_000,
  warmUpMs: 6_000,
  calibrationMs: 6_000,
  unloadedSamples: 150,
  clientTimeoutMs: 10_000,
  server: { capacity: 4, baseLatencyMs: 60, perTokenMs: 1, perKbMs: 20, batchPenalty: 0.5 },
  sloFactor: 4,
  sloFloorMs: 500,
  mix: { critical: 0.2, standard: 0.5, sheddable: 0.3 },
  seed: 7,
  retry: {
    // Issue 17's evaluation: a retry storm at 4× (also with a busy host), backoff at 2×, and what is shed at 1×.
    scenarios: [
      { policy: "immediate", load: 4 },
      { policy: "immediate", load: 4, cpuHog: true },
      { policy: "backoff", load: 2 },
      { policy: "backoff", load: 1 },
    ],
    repeats: 5,
    scenarioMs: 20_000,
    thinkMs: 1_000,
    // Above the largest request's loaded service time (~1.7 s) plus critical's longest queue wait in the guard (0.9 s).
    attemptTimeoutMs: 4_000,
  },
};

export interface BenchRequest {
  readonly priority: Priority;
  readonly body: string;
  /** Service time alone on the server (its own unloaded latency, without the batch penalty). */
  readonly workMs: number;
  readonly sloMs: number;
}

const WORDS = [
  "order",
  "refund",
  "delivery",
  "invoice",
  "account",
  "error",
  "update",
  "please",
  "status",
  "help",
  "late",
  "thanks",
];

function logNormal(random: () => number, median: number, sigma: number): number {
  return median * Math.exp(sigma * gaussian(random));
}

/** A realistic spread: prompts from a few words to a few KiB, output budgets from 8 to 1024 tokens. */
export function requestFactory(options: ShedBenchOptions): (index: number) => BenchRequest {
  const random = seededRandom(options.seed);
  const { server, mix } = options;
  return (index) => {
    const draw = random();
    const priority: Priority =
      draw < mix.critical ? "critical" : draw < mix.critical + mix.standard ? "standard" : "sheddable";
    const maxTokens = Math.round(Math.min(1024, Math.max(8, logNormal(random, 96, 0.8))));
    const promptChars = Math.round(Math.min(8_000, Math.max(20, logNormal(random, 400, 1))));
    let prompt = `#${index} `;
    while (prompt.length < promptChars) prompt += `${WORDS[Math.floor(random() * WORDS.length)]} `;
    const body = JSON.stringify({
      model: "demo",
      max_tokens: maxTokens,
      messages: [{ role: "user", content: prompt }],
    });
    const workMs =
      server.baseLatencyMs + server.perTokenMs * maxTokens + (server.perKbMs * Buffer.byteLength(body)) / 1024;
    return { priority, body, workMs, sloMs: Math.max(options.sloFloorMs, options.sloFactor * workMs) };
  };
}
