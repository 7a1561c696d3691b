// The `tracing` section. Every key is optional and overrides the standard OTEL_* environment
// variable it names (settings.ts resolves the two): a platform that injects OTEL_* into every pod
// configures the guard like any other OpenTelemetry service, and the file can still say otherwise.
import { z } from "zod";

/** OTEL_TRACES_SAMPLER values the guard implements (the spec's built-in samplers). */
export const SAMPLERS = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
] as const;
export type SamplerName = (typeof SAMPLERS)[number];

/** OTEL_EXPORTER_OTLP_PROTOCOL values. */
export const PROTOCOLS = ["http/protobuf", "http/json", "grpc"] as const;
export type OtlpProtocol = (typeof PROTOCOLS)[number];

/** Exchanges exported whatever the sampler decided (docs/observability.md, "Sampling"). */
export const ALWAYS_SAMPLED = ["shed", "contract_violation"] as const;
export type AlwaysSampled = (typeof ALWAYS_SAMPLED)[number];

const otlpUrl = z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" });

export const tracingSchema = z
  .strictObject({
    /** false: no tracing whatever the environment says. Absent or true: on when an endpoint is set. */
    enabled: z.boolean().optional(),
    /** Base URL of the OTLP receiver (OTEL_EXPORTER_OTLP_ENDPOINT); HTTP protocols append /v1/traces. */
    endpoint: otlpUrl.optional(),
    /** Full URL of the traces receiver, used as is (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). */
    tracesEndpoint: otlpUrl.optional(),
    /** OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / OTEL_EXPORTER_OTLP_PROTOCOL; default http/protobuf. */
    protocol: z.enum(PROTOCOLS).optional(),
    /** OTEL_SERVICE_NAME; default inference-guard. */
    serviceName: z.string().min(1).max(256).optional(),
    /** Merged over OTEL_RESOURCE_ATTRIBUTES (these win on the same key). */
    resourceAttributes: z.record(z.string().min(1).max(256), z.string().max(4096)).default({}),
    /** OTEL_TRACES_SAMPLER; default parentbased_traceidratio. */
    sampler: z.enum(SAMPLERS).optional(),
    /** OTEL_TRACES_SAMPLER_ARG for the ratio samplers; default 1. */
    ratio: z.number().min(0).max(1).optional(),
    /**
     * Exchanges exported even when the sampler dropped them. Every exchange is then recorded (not
     * exported) until its outcome is known, so this costs span objects on every request.
     */
    alwaysSample: z.array(z.enum(ALWAYS_SAMPLED)).default([]),
    /** OTEL_BSP_SCHEDULE_DELAY: the most a finished span waits in the batch before export; default 5000. */
    scheduleDelayMs: z.number().int().min(1).max(600_000).optional(),
  })
  .prefault({});

export type TracingConfig = z.output<typeof tracingSchema>;
