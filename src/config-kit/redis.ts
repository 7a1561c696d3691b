// The connection settings every stage that shares state through Redis takes (the cache, the tenant
// budgets, the drift profiles, the rollouts): one shape, documented once. Where Redis is: one
// server (url), a Redis Cluster (cluster.nodes) or a master watched by Sentinel (sentinel).
import { z } from "zod";

const URL_PATTERN = /^rediss?:\/\/.+/;
const redisUrl = z.string().regex(URL_PATTERN, { message: 'expected a "redis://" or "rediss://" URL' });
/** A node list: a few seeds are enough, the client discovers the rest. */
const nodeList = z.array(redisUrl).min(1).max(64);

/** Where the shared Redis is; undefined when the section names none (each sidecar keeps its own state). */
export type RedisTarget =
  | { readonly kind: "single"; readonly url: string }
  /** Seed nodes: the client learns the slots and the other masters and replicas from any of them. */
  | { readonly kind: "cluster"; readonly nodes: readonly string[] }
  | {
      readonly kind: "sentinel";
      /** The master group name the sentinels monitor. */
      readonly name: string;
      readonly nodes: readonly string[];
      /** The master's own credentials (a sentinel's are in its URL). */
      readonly username?: string | undefined;
      readonly password?: string | undefined;
    };

/** url, cluster, sentinel, timeoutMs, keyPrefix (defaulting to the stage's own), probeIntervalMs. */
function sharedRedisFields(keyPrefix: string) {
  return {
    /** One Redis server: a redis:// or rediss:// URL. Absent with cluster and sentinel: no shared tier. */
    url: redisUrl.optional(),
    /** A Redis Cluster, reached through any of these nodes (a few seeds suffice; the rest is discovered). */
    cluster: z.strictObject({ nodes: nodeList }).optional(),
    /** A master (and its replicas) found through these sentinels, which follow its failover. */
    sentinel: z
      .strictObject({
        /** The master group name the sentinels monitor (sentinel.conf's `sentinel monitor <name> …`). */
        name: z.string().min(1).max(128),
        /** The sentinels' URLs (credentials in a URL are that sentinel's; rediss://: TLS to sentinels and master). */
        nodes: nodeList,
        /** The master's ACL user, when it has one. */
        username: z.string().min(1).optional(),
        /** The master's password (requirepass), when it has one. */
        password: z.string().min(1).optional(),
      })
      .optional(),
    /** Longest a call may wait for Redis before the stage goes on with its in-process state alone. */
    timeoutMs: z.number().int().min(1).max(1_000).default(30),
    /** Prefix of every key the guard writes, so several services can share one Redis. */
    keyPrefix: z.string().min(1).max(64).default(keyPrefix),
    /** While Redis is known down, calls are skipped; one probe is let through this often. */
    probeIntervalMs: z.number().int().min(10).max(60_000).default(1_000),
  };
}

type TargetFields = {
  readonly url?: string | undefined;
  readonly cluster?: { readonly nodes: readonly string[] } | undefined;
  readonly sentinel?: Omit<Extract<RedisTarget, { kind: "sentinel" }>, "kind"> | undefined;
};

/**
 * A stage's `redis` section: the shared fields plus the stage's own (`extra`). The refinement
 * names the offending key, so a config error points at e.g. `cache.redis.cluster.nodes.1`.
 */
export function sharedRedisSchema<Extra extends z.ZodRawShape>(keyPrefix: string, extra: Extra) {
  return (
    z
      .strictObject({ ...sharedRedisFields(keyPrefix), ...extra })
      .superRefine((section, ctx) => checkTarget(section as TargetFields, ctx))
      // Every field has a default (the stages' own fields too), so an absent section is a valid one.
      .prefault({} as never)
  );
}

/** One target at most; a node list reached one way (scheme, and for a cluster credentials too). */
function checkTarget(section: TargetFields, ctx: z.RefinementCtx): void {
  const given = (["url", "cluster", "sentinel"] as const).filter((key) => section[key] !== undefined);
  for (const key of given.slice(1))
    ctx.addIssue({
      code: "custom",
      path: [key],
      message: `${given[0]} and ${key} are alternatives: give one of url, cluster or sentinel`,
    });
  const lists = [
    ["cluster", section.cluster?.nodes],
    ["sentinel", section.sentinel?.nodes],
  ] as const;
  for (const [key, nodes] of lists) {
    if (nodes === undefined) continue;
    // One client per kind of target: every node is reached the same way, with the same TLS.
    const scheme = schemeOf(nodes[0]);
    nodes.forEach((node, index) => {
      if (schemeOf(node) !== scheme)
        ctx.addIssue({
          code: "custom",
          path: [key, "nodes", index],
          message: `every node needs the same scheme (${scheme}//, as the first one)`,
        });
    });
    if (key === "cluster") {
      // A cluster's nodes share one ACL: their credentials are passed once, for every node.
      const credentials = credentialsOf(nodes[0]);
      nodes.forEach((node, index) => {
        if (!sameCredentials(credentialsOf(node), credentials))
          ctx.addIssue({
            code: "custom",
            path: [key, "nodes", index],
            message: "every node of a cluster needs the same user and password as the first one",
          });
      });
    }
  }
}

/** Where a parsed section points; undefined: no shared tier. */
export function redisTarget(section: TargetFields): RedisTarget | undefined {
  if (section.url !== undefined) return { kind: "single", url: section.url };
  if (section.cluster !== undefined) return { kind: "cluster", nodes: section.cluster.nodes };
  if (section.sentinel !== undefined) return { kind: "sentinel", ...section.sentinel };
  return undefined;
}

export interface RedisEndpoint {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  readonly username?: string;
  readonly password?: string;
}

/** A node URL as ioredis' cluster and sentinel options take it (they accept no URLs). */
export function endpointOf(url: string): RedisEndpoint {
  const parsed = new URL(url);
  const { username, password } = credentialsOf(url);
  return {
    // new URL keeps an IPv6 host in brackets, which a socket address must not have.
    host: parsed.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: parsed.port === "" ? 6379 : Number(parsed.port),
    tls: parsed.protocol === "rediss:",
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
  };
}

/** host:port of each node, for logs (URLs may carry a password). */
export function describeTarget(target: RedisTarget): string {
  const hosts = (urls: readonly string[]) =>
    urls
      .map((url) => {
        try {
          const parsed = new URL(url);
          return `${parsed.protocol}//${parsed.host}`;
        } catch {
          return "redis";
        }
      })
      .join(",");
  switch (target.kind) {
    case "single":
      return hosts([target.url]);
    case "cluster":
      return `cluster ${hosts(target.nodes)}`;
    case "sentinel":
      return `sentinel ${target.name}@${hosts(target.nodes)}`;
  }
}

function schemeOf(url: string | undefined): string | undefined {
  return url?.slice(0, url.indexOf("//"));
}

function credentialsOf(url: string | undefined): { username?: string; password?: string } {
  if (url === undefined) return {};
  try {
    const parsed = new URL(url);
    return {
      ...(parsed.username === "" ? {} : { username: decodeURIComponent(parsed.username) }),
      ...(parsed.password === "" ? {} : { password: decodeURIComponent(parsed.password) }),
    };
  } catch {
    return {};
  }
}

function sameCredentials(a: { username?: string; password?: string }, b: { username?: string; password?: string }) {
  return a.username === b.username && a.password === b.password;
}
