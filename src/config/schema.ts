// The guard's configuration schema, composed from the sections: the process's own (listen, drain,
// envoy, log) are here, every stage's lives next to the stage (its config.ts) and is only composed
// here. Every object below the top level is strict (an unknown key is an error with its path,
// usually a typo) and every key has a default, so an empty file is a working config.
import { z } from "zod";
import { labelName } from "../config-kit/primitives.js";
import { contractsSectionSchema, routeContractSchema } from "../contracts/config.js";
import { LOG_COMPONENTS, LOG_LEVELS, type LogComponent } from "../log.js";
import { admissionSchema, routeAdmissionSchema } from "../pipeline/admission/config.js";
import { annotateSchema } from "../pipeline/annotate/config.js";
import { budgetSchema, routeBudgetSchema } from "../pipeline/budget/config.js";
import { cacheSettingsSchema, routeCacheSchema } from "../pipeline/cache/config.js";
import { canarySchema, routeCanarySchema } from "../pipeline/canary/config.js";
import { complexityRouteSchema } from "../pipeline/complexity/config.js";
import { driftSchema, routeDriftSchema } from "../pipeline/drift/config.js";
import { identitySchema, routeIdentitySchema } from "../pipeline/identity/config.js";
import { maintenanceSchema } from "../pipeline/maintenance/config.js";
import { routeMatchSchema, routeStreamingSchema } from "../pipeline/routing/config.js";
import { routeUsageSchema, usageSchema } from "../pipeline/usage/config.js";
import { tracingSchema } from "../tracing/config.js";
import { parseAddress } from "../util/address.js";

/** "host:port" or "unix:/path/to.sock". */
const LISTEN_ADDRESS = /^(unix:\/.+|\[[0-9a-fA-F:.]+\]:\d{1,5}|[A-Za-z0-9.-]+:\d{1,5})$/;
const listenAddress = z
  .string()
  .regex(LISTEN_ADDRESS, { message: 'expected "host:port", "[v6]:port" or "unix:/absolute/path.sock"' })
  .refine((address) => !LISTEN_ADDRESS.test(address) || isListenable(address), {
    message: "port out of range (0-65535)",
  });

/** What the listeners will accept (util/address.ts parses it at startup): here, port range included. */
function isListenable(address: string): boolean {
  try {
    parseAddress(address);
    return true;
  } catch {
    return false;
  }
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/;

const listenSchema = z
  .strictObject({
    /** ext_proc gRPC listener Envoy connects to. Loopback by default: it carries prompts. */
    grpc: listenAddress.default("127.0.0.1:50051"),
    /** Admin HTTP: /metrics, /healthz, /readyz. */
    admin: listenAddress.default("127.0.0.1:9464"),
    /** Listening on a non-loopback address exposes prompts and metrics; it must be asked for. */
    allowPublicBind: z.boolean().default(false),
    /** File mode of the ext_proc Unix socket (octal string): who besides Envoy may connect. */
    socketMode: z
      .string()
      .regex(/^0?[0-7]{3}$/, { message: 'expected an octal file mode such as "660"' })
      .default("660"),
  })
  .superRefine((listen, ctx) => {
    if (listen.allowPublicBind) return;
    // A socket every local user may connect to is a public bind on this host.
    if (listen.grpc.startsWith("unix:") && /[1-7]$/.test(listen.socketMode)) {
      ctx.addIssue({
        code: "custom",
        path: ["socketMode"],
        message: `"${listen.socketMode}" lets every local user connect to the ext_proc socket; set listen.allowPublicBind: true to allow it`,
      });
    }
    for (const key of ["grpc", "admin"] as const) {
      const address = listen[key];
      // A malformed address already has its own error; zod runs refinements regardless.
      if (LISTEN_ADDRESS.test(address) && !address.startsWith("unix:") && !LOOPBACK.test(address)) {
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `"${address}" is not a loopback address; set listen.allowPublicBind: true to expose it`,
        });
      }
    }
  })
  .prefault({});

const drainMs = z.number().int().min(0).max(600_000);

const drainSchema = z
  .strictObject({
    /**
     * After SIGTERM, how long the guard keeps taking new ext_proc streams while readiness is
     * already false: the time load balancers and Envoy's health checks of the guard cluster need
     * to stop sending to it. Refusing earlier fails or unguards the requests that still come.
     */
    graceMs: drainMs.default(5_000),
    /**
     * After SIGTERM (grace included), when the guard cuts the streams still open and exits: keep
     * it under the pod's terminationGracePeriodSeconds.
     */
    timeoutMs: drainMs.default(10_000),
  })
  .superRefine((drain, ctx) => {
    // A field that failed has its own error; zod runs refinements regardless.
    if (!drainMs.safeParse(drain.graceMs).success || !drainMs.safeParse(drain.timeoutMs).success) return;
    if (drain.graceMs >= drain.timeoutMs)
      ctx.addIssue({
        code: "custom",
        path: ["graceMs"],
        message: `${drain.graceMs} must be shorter than drain.timeoutMs (${drain.timeoutMs}): the timeout counts from SIGTERM, grace included, and the streams taken at the end of the grace need the rest to finish`,
      });
  })
  .prefault({});

const envoySchema = z
  .strictObject({
    /**
     * The ext_proc filter's message_timeout in the Envoy config this guard serves. The guard never
     * talks to Envoy's config; it uses this to warn when it would hold a message longer than
     * Envoy waits (Envoy would then apply failure_mode_allow to a request the guard still holds).
     */
    messageTimeoutMs: z.number().int().min(1).default(1_000),
    /**
     * The filter's max_message_timeout: the most the guard may extend one message's timer
     * (override_message_timeout) while it holds a request (admission queue, cache coalescing).
     */
    maxMessageTimeoutMs: z.number().int().min(1).default(30_000),
    /**
     * The listener's per_connection_buffer_limit_bytes (envoy/envoy.yaml uses 8 MiB). Requests
     * whose announced body is larger than this are answered 413 by the guard when a stage needs
     * the body, instead of being left to hang in Envoy (docs/reliability.md).
     */
    bufferLimitBytes: z
      .number()
      .int()
      .min(1)
      .default(8 * 1024 * 1024),
    /**
     * Envoy's admin address (http://127.0.0.1:9901 in the shipped pod, where the admin listens on
     * loopback): when set, each scrape of /metrics reads Envoy's ext_proc counters and exports the
     * requests it sent on without the guard as guard_envoy_unguarded_total{reason}.
     */
    adminUrl: z
      .url({ protocol: /^https?$/, error: 'expected an http(s) URL such as "http://127.0.0.1:9901"' })
      .transform((url) => url.replace(/\/+$/, ""))
      .optional(),
    /** The Envoy cluster that reaches the guard (its circuit breakers' overflows are counted). */
    guardCluster: z.string().min(1).max(200).default("inference_guard"),
  })
  .prefault({});

const adminSchema = z
  .strictObject({
    /**
     * A file holding the bearer token that endpoints changing state (POST /admin/cache/purge)
     * require, e.g. a mounted Secret; read at each such request, so a rotation applies at once.
     * INFERENCE_GUARD_ADMIN_TOKEN takes precedence. With neither, those endpoints are refused.
     */
    tokenFile: z.string().min(1).optional(),
    /**
     * Host names clients reach the admin port by besides its listen address and localhost (a
     * Service's DNS name). Any other Host is refused: that is what defeats DNS rebinding.
     */
    allowedHosts: z
      .array(
        z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/, {
          message: "expected a DNS name without port",
        }),
      )
      .default([]),
  })
  .prefault({});

const MIB = 1024 * 1024;

/**
 * What one abusive or stuck peer may hold of the guard's memory. The defaults fit a 512 MiB pod
 * (deploy/kubernetes): the heap is left room for the cache, contracts and ordinary traffic.
 */
const limitsSchema = z
  .strictObject({
    /**
     * Reply bytes one ext_proc stream may have waiting for its peer's HTTP/2 window. The guard
     * stops reading a stream while its replies wait, so only replies the guard sends on its own
     * (deadline extensions, health watches) can pile up here; past it the stream is reset with
     * ENHANCE_YOUR_CALM (RESOURCE_EXHAUSTED to a gRPC client). A reply into an empty queue always
     * fits, whatever its size.
     */
    maxStreamQueuedBytes: z
      .number()
      .int()
      .min(1)
      .default(4 * MIB),
    /** The same for all streams of one connection together: a peer opening many streams that it never reads. */
    maxConnectionQueuedBytes: z
      .number()
      .int()
      .min(1)
      .default(32 * MIB),
    /**
     * The largest ext_proc message read; a larger one is refused at its length prefix
     * (RESOURCE_EXHAUSTED), before its bytes are held. Envoy sends a buffered body in one message,
     * so this must pass envoy.bufferLimitBytes by a message's headers (a config check says so);
     * 16 MiB is twice the shipped Envoy configs' 8 MiB, and four times gRPC's own 4 MiB default.
     */
    maxMessageBytes: z
      .number()
      .int()
      .min(1)
      .default(16 * MIB),
    /**
     * Bytes of ext_proc messages the guard holds across all streams, from a message's prefix until
     * it was handled. The stream whose next message would pass it is reset with ENHANCE_YOUR_CALM
     * (RESOURCE_EXHAUSTED) before the message's bytes are read. 128 MiB: sixteen of Envoy's 8 MiB
     * buffered bodies.
     */
    maxBufferedBytes: z
      .number()
      .int()
      .min(1)
      .default(128 * MIB),
    /**
     * HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: streams one connection may have open. A stream past
     * it is refused by HTTP/2 itself (REFUSED_STREAM, safe to retry; Envoy opens another connection).
     */
    maxConcurrentStreamsPerConnection: z.number().int().min(1).default(1_000),
    /** Streams open on all connections together; a new one beyond is answered RESOURCE_EXHAUSTED. */
    maxStreams: z.number().int().min(1).default(10_000),
    /**
     * RST_STREAM frames a peer may send on one connection: a burst, then a rate per second (Node's
     * rapid-reset protection, CVE-2023-44487); past it the connection gets GOAWAY and its streams
     * in flight fail. Node's own 1000 then 33/s is below what an Envoy sends when it resets every
     * finished ext_proc stream (ext_proc_graceful_grpc_close off: one reset per request, thousands a
     * second); these sit above any Envoy's request rate and far below a rapid-reset attack's.
     */
    streamResetBurst: z.number().int().min(1).default(10_000),
    streamResetRate: z.number().int().min(1).default(5_000),
    /** Connections open at once; one beyond is closed as it is accepted. */
    maxConnections: z.number().int().min(1).default(128),
    /** A connection that has not sent its HTTP/2 preface after this long is closed. */
    prefaceTimeoutMs: z.number().int().min(1).default(5_000),
    /**
     * A stream that has sent nothing after this long ends with DEADLINE_EXCEEDED (Envoy sends the
     * request headers as it opens the stream; a slow message is bounded by maxStreamLifetimeMs).
     */
    streamIdleTimeoutMs: z.number().int().min(1).default(10_000),
    /**
     * The longest a stream may stay open; then it ends with DEADLINE_EXCEEDED and its exchange is
     * cleaned up (admission released). Above Envoy's longest route timeout (envoy/envoy.yaml:
     * 300 s, which spans a streamed answer) plus the longest message timeout extension (30 s).
     */
    maxStreamLifetimeMs: z.number().int().min(1).default(600_000),
    /**
     * New ext_proc streams are refused (RESOURCE_EXHAUSTED) while V8's used heap is above this
     * share of its limit, like Envoy's overload manager: the guard sheds before it runs out of
     * heap. Health checks are still answered.
     */
    overloadHeapRatio: z.number().gt(0).max(1).default(0.9),
  })
  .superRefine((limits, ctx) => {
    if (!(limits.maxBufferedBytes >= limits.maxMessageBytes))
      ctx.addIssue({
        code: "custom",
        path: ["maxBufferedBytes"],
        message: `${limits.maxBufferedBytes} is below limits.maxMessageBytes (${limits.maxMessageBytes}): the largest message would never fit the budget`,
      });
  })
  .prefault({});

export const routeSchema = z.strictObject({
  /** Used as a metric label and in headers: short, stable, bounded by this file. */
  name: labelName(40),
  match: routeMatchSchema,
  streaming: routeStreamingSchema,
  maintenance: maintenanceSchema.optional(),
  cache: routeCacheSchema,
  admission: routeAdmissionSchema,
  budget: routeBudgetSchema,
  complexity: complexityRouteSchema,
  contract: routeContractSchema.optional(),
  drift: routeDriftSchema,
  canary: routeCanarySchema.optional(),
  usage: routeUsageSchema,
  identity: routeIdentitySchema,
});

const logLevel = z.enum(LOG_LEVELS);
const logSchema = z
  .strictObject({
    level: logLevel.default("info"),
    /** A level per component (src/log.ts), for one part of the guard louder or quieter than the rest. */
    components: z
      .strictObject(
        Object.fromEntries(Object.keys(LOG_COMPONENTS).map((component) => [component, logLevel.optional()])) as Record<
          LogComponent,
          z.ZodOptional<typeof logLevel>
        >,
      )
      .default({}),
  })
  .prefault({});

/** The top-level sections besides routes, each validated on its own (config/load.ts). */
export const SECTIONS = {
  listen: listenSchema,
  drain: drainSchema,
  envoy: envoySchema,
  annotate: annotateSchema,
  log: logSchema,
  limits: limitsSchema,
  admin: adminSchema,
  cache: cacheSettingsSchema,
  admission: admissionSchema,
  budget: budgetSchema,
  contracts: contractsSectionSchema,
  drift: driftSchema,
  canary: canarySchema,
  usage: usageSchema,
  identity: identitySchema,
  tracing: tracingSchema,
};

/**
 * The whole file. A key beside these sections is not an error here: config/load.ts warns about
 * it (an unknown section) instead.
 */
export const configSchema = z
  .object({
    ...SECTIONS,
    /** First match wins. A request no route matches passes through untouched. */
    routes: z.array(routeSchema).default([]),
  })
  .prefault({});

export type GuardConfig = z.output<typeof configSchema>;
export type Sections = Omit<GuardConfig, "routes">;
export type RouteConfig = GuardConfig["routes"][number];
