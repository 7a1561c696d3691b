// What the pipeline benchmark measures: one request shape and the configurations it goes through.
//
// The request is a 2 KiB OpenAI chat request for the demo's "triage" model with structured output
// (x-demo-task: chat_structured, temperature 0, n = 4): the response is ~1 KiB holding four
// demo.v1.TicketTriage objects, so the full pipeline scores a 2 KiB body, keys and stores a cache
// entry, and validates four contract payloads per response. Every configuration gets exactly
// the same requests; only what sits between Envoy and the model changes.
import { loadGuardConfigObject, type StackOptions } from "../../src/devstack/stack.js";
import { type RedisServer, startRedis } from "../../test/helpers/redis.js";

export const REQUEST_PATH = "/v1/chat/completions";
export const REQUEST_BYTES = 2048;
export const REQUEST_HEADERS: readonly string[] = ["content-type: application/json", "x-demo-task: chat_structured"];
/** Upstream service time of the cache-hit comparison (issue 7: "an upstream call that takes 5 ms"). */
export const SLOW_UPSTREAM_MS = 5;

const TICKET = "Customer reports that the invoice for last month was charged twice and asks for a refund. ";

/** The chat request, padded to exactly `bytes` bytes of JSON. */
export function chatRequestBody(bytes = REQUEST_BYTES): string {
  const render = (content: string): string =>
    JSON.stringify({
      model: "triage-v1",
      temperature: 0,
      n: 4,
      messages: [
        { role: "system", content: "Classify the support ticket." },
        { role: "user", content },
      ],
    });
  const empty = render("").length;
  if (bytes < empty) throw new Error(`the chat request needs at least ${empty} bytes`);
  const content = TICKET.repeat(Math.ceil((bytes - empty) / TICKET.length)).slice(0, bytes - empty);
  return render(content);
}

export interface BenchConfiguration {
  readonly id: string;
  readonly title: string;
  /** What a reader of the report needs to know about how it was measured. */
  readonly notes: string;
  stackOptions(): Promise<StackOptions>;
  /** false: all requests share one URI, so after the first every request is a cache hit. */
  readonly uniqueUris: boolean;
  /** Response headers the probe request must show, proving the configuration does what it says. */
  readonly expectHeaders: Readonly<Record<string, string | null>>;
  /** Configuration whose latency this one adds to ("a" for everything but the cache-hit path). */
  readonly baseline: string;
}

export interface Peer {
  readonly command: string;
  readonly address: string;
  /** The same server asked to exchange d's messages (both bodies, buffered), measured as f_d. */
  readonly bodiesCommand?: string;
}

const ROUTE_MATCH = { pathPrefix: REQUEST_PATH, methods: ["POST"] };

/** Route only annotated: Envoy sends request and response headers, no bodies. */
const PASS_THROUGH_GUARD = { routes: [{ name: "chat", match: ROUTE_MATCH }] };

/** Request body buffered and scored; the tier header picks the pool. */
const SCORING_GUARD = { routes: [{ name: "chat", match: ROUTE_MATCH, complexity: { enabled: true } }] };

/**
 * config/default.yaml with the admission budget held open. Admission still runs in full (cost
 * accounting, class shares, queue checks, latency samples) but cannot shed: on a shared 2-core
 * machine the upstream's latency swings with everyone's load, the adaptive limit backs off to its
 * floor, and 429s answered in microseconds would then stand in for the latency being measured.
 */
async function fullPipelineGuard(): Promise<Record<string, unknown>> {
  const config = await loadGuardConfigObject();
  const admission = (config.admission ?? {}) as Record<string, unknown>;
  const limit = (admission.limit ?? {}) as Record<string, unknown>;
  const open = 1_000_000;
  return { ...config, admission: { ...admission, limit: { ...limit, initial: open, min: open, max: open } } };
}

// One real redis-server for the run, started by the first configuration that shares through it
// (and killed as the benchmark exits).
let sharedRedis: Promise<RedisServer> | undefined;
let redisRuns = 0;

/**
 * d's guard with the cache's shared tier on: every miss is also looked up and stored in Redis.
 * Each run keys its entries apart, so a run's requests miss in Redis too, as in d, instead of
 * hitting what the run before stored under the same URIs.
 */
async function fullPipelineWithRedis(): Promise<Record<string, unknown>> {
  sharedRedis ??= startRedis();
  const config = await fullPipelineGuard();
  const cache = (config.cache ?? {}) as Record<string, unknown>;
  const redis = { url: (await sharedRedis).url, keyPrefix: `guard:cache:run${++redisRuns}:` };
  return { ...config, cache: { ...cache, redis } };
}

/** Stops what configurations started for the whole benchmark (the shared redis-server). */
export async function stopSharedServers(): Promise<void> {
  const redis = sharedRedis;
  sharedRedis = undefined;
  await (await redis)?.stop();
}

const slowUpstream = {
  light: ["--base-latency-ms", String(SLOW_UPSTREAM_MS)],
  heavy: ["--base-latency-ms", String(SLOW_UPSTREAM_MS)],
};

/** Another ext_proc server in the guard's place, through the same Envoy config as b–e. */
function peerConfiguration(
  id: string,
  title: string,
  command: string,
  address: string,
  what: string,
): BenchConfiguration {
  return {
    id,
    title,
    notes: `\`${command}\` at ${address}${what}`,
    stackOptions: async () => ({ peer: { command, address } }),
    uniqueUris: true,
    expectHeaders: {},
    baseline: "a",
  };
}

export function configurations(peer: Peer | undefined): BenchConfiguration[] {
  const all: BenchConfiguration[] = [
    {
      id: "a",
      title: "Envoy → upstream (no ext_proc)",
      notes: "the floor: Envoy's listener, router and the demo model, without the ext_proc filter",
      stackOptions: async () => ({ withGuard: false }),
      uniqueUris: true,
      expectHeaders: { "x-guard-route": null },
      baseline: "a",
    },
    {
      id: "b",
      title: "+ guard, pass-through",
      notes: "route only annotated (x-guard-route): request and response headers, no bodies",
      stackOptions: async () => ({ guardConfig: PASS_THROUGH_GUARD }),
      uniqueUris: true,
      expectHeaders: { "x-guard-route": "chat", "x-guard-cache": null },
      baseline: "a",
    },
    {
      id: "c",
      title: "+ body buffering, complexity scoring, routing",
      notes: "request body buffered (mode_override) and scored; tier header set for Envoy's route table",
      stackOptions: async () => ({ guardConfig: SCORING_GUARD }),
      uniqueUris: true,
      expectHeaders: { "x-guard-route": "chat", "x-guard-cache": null },
      baseline: "a",
    },
    {
      id: "d",
      title: "everything on, cache miss path",
      notes:
        "config/default.yaml (complexity, admission with its budget held open, 64 MiB cache, contract enforce); every URI distinct, so every request is a cache miss that is stored",
      stackOptions: async () => ({ guardConfig: await fullPipelineGuard() }),
      uniqueUris: true,
      expectHeaders: { "x-guard-route": "chat", "x-guard-cache": "miss", "x-guard-contract": "passed" },
      baseline: "a",
    },
    {
      id: "d_redis",
      title: "everything on, cache miss, shared Redis tier",
      notes:
        "as d, with cache.redis on a local redis-server: each miss is also looked up in Redis and stored there (issue 24: within 5% of d's CPU per request)",
      stackOptions: async () => ({ guardConfig: await fullPipelineWithRedis() }),
      uniqueUris: true,
      expectHeaders: { "x-guard-route": "chat", "x-guard-cache": "miss", "x-guard-contract": "passed" },
      baseline: "a",
    },
    {
      id: "d_uds",
      title: "everything on, cache miss, Unix socket",
      notes: "as d, with Envoy reaching the guard over a Unix domain socket instead of loopback TCP",
      stackOptions: async () => ({ guardConfig: await fullPipelineGuard(), transport: "uds" }),
      uniqueUris: true,
      expectHeaders: { "x-guard-route": "chat", "x-guard-cache": "miss", "x-guard-contract": "passed" },
      baseline: "a",
    },
    {
      id: "e_upstream",
      title: `everything on, cache miss, ${SLOW_UPSTREAM_MS} ms upstream`,
      notes: `as d, with the demo model taking ${SLOW_UPSTREAM_MS} ms per request: what a cache hit saves`,
      stackOptions: async () => ({ guardConfig: await fullPipelineGuard(), demoArgs: slowUpstream }),
      uniqueUris: true,
      expectHeaders: { "x-guard-cache": "miss" },
      baseline: "a",
    },
    {
      id: "e",
      title: `cache hit (upstream would take ${SLOW_UPSTREAM_MS} ms)`,
      notes: "as e_upstream, every request the same URI and body: answered by the guard from the in-process tier",
      stackOptions: async () => ({ guardConfig: await fullPipelineGuard(), demoArgs: slowUpstream }),
      uniqueUris: false,
      expectHeaders: { "x-guard-cache": "hit", "x-guard-cache-tier": "local" },
      baseline: "e_upstream",
    },
  ];
  if (peer !== undefined) {
    all.push(
      peerConfiguration(
        "f",
        "+ peer ext_proc server",
        peer.command,
        peer.address,
        ", through the same Envoy config as b",
      ),
    );
    if (peer.bodiesCommand !== undefined) {
      all.push(
        peerConfiguration(
          "f_d",
          "+ peer ext_proc server, d's messages",
          peer.bodiesCommand,
          peer.address,
          ": asks Envoy (mode_override) for the buffered request body, the response headers and the buffered response body, as the guard does in d, and answers each unchanged: the protocol's share of d",
        ),
      );
    }
  }
  return all;
}
