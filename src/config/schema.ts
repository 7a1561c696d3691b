// The guard's configuration schema. Every object is strict (an unknown key is an error with its
// path, usually a typo) and every key has a default, so an empty file is a working config.
// Capabilities add their own section here; its schema lives next to the capability.
import { z } from "zod";
import { contractsSectionSchema, routeContractSchema } from "../contracts/config.js";

/** "host:port" or "unix:/path/to.sock". */
const listenAddress = z
  .string()
  .regex(/^(unix:\/.+|\[[0-9a-fA-F:.]+\]:\d{1,5}|[A-Za-z0-9.-]+:\d{1,5})$/, {
    message: 'expected "host:port", "[v6]:port" or "unix:/absolute/path.sock"',
  });

const headerName = z
  .string()
  .regex(/^[a-z0-9!#$%&'*+.^_`|~-]+$/, { message: "expected a lower-case HTTP header name" });

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
  .prefault({});

const drainSchema = z
  .strictObject({
    /** After SIGTERM, how long in-flight streams may take before the guard exits anyway. */
    timeoutMs: z.number().int().min(0).max(600_000).default(10_000),
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
  })
  .prefault({});

const annotateSchema = z
  .strictObject({
    /** Header added to the upstream request naming the matched route; "" disables it. */
    requestHeader: z.union([headerName, z.literal("")]).default("x-guard-route"),
    /** Header added to the client's response naming the matched route; "" disables it. */
    responseHeader: z.union([headerName, z.literal("")]).default("x-guard-route"),
  })
  .prefault({});

const routeMatchSchema = z
  .strictObject({
    pathPrefix: z.string().startsWith("/").default("/"),
    /** Upper-case HTTP methods; empty means any. */
    methods: z.array(z.string().regex(/^[A-Z]+$/, { message: "expected an upper-case HTTP method" })).default([]),
    /** Exact header values that must all be present. */
    headers: z.record(headerName, z.string()).default({}),
  })
  .prefault({});

const routeSchema = z.strictObject({
  /** Used as a metric label and in headers: short, stable, bounded by this file. */
  name: z.string().regex(/^[a-z][a-z0-9_-]{0,39}$/, {
    message: "expected 1-40 chars of a-z, 0-9, _ or -, starting with a letter",
  }),
  match: routeMatchSchema,
  contract: routeContractSchema.optional(),
});

const logSchema = z
  .strictObject({
    level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  })
  .prefault({});

export const configSchema = z
  .strictObject({
    listen: listenSchema,
    drain: drainSchema,
    envoy: envoySchema,
    annotate: annotateSchema,
    log: logSchema,
    contracts: contractsSectionSchema,
    /** First match wins. A request no route matches passes through untouched. */
    routes: z.array(routeSchema).default([]),
  })
  .prefault({});

export type GuardConfig = z.output<typeof configSchema>;
export type RouteConfig = GuardConfig["routes"][number];
