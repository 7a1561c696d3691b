// What tracing runs with: the `tracing` section over the standard OTEL_* environment variables
// (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/). Pure: the
// environment is passed in, so every rule is tested without touching process.env.
import type { ConfigIssue } from "../config-kit/issues.js";
import {
  ALWAYS_SAMPLED,
  type AlwaysSampled,
  type OtlpProtocol,
  PROTOCOLS,
  SAMPLERS,
  type SamplerName,
  type TracingConfig,
} from "./config.js";

export const DEFAULT_SERVICE_NAME = "inference-guard";

export interface TracingSettings {
  /** Where spans go, the full traces URL (HTTP) or the receiver's address (gRPC). */
  readonly url: string;
  readonly protocol: OtlpProtocol;
  readonly serviceName: string;
  /** OTEL_RESOURCE_ATTRIBUTES, then the section's resourceAttributes (service.name set apart). */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  readonly sampler: SamplerName;
  readonly ratio: number;
  readonly alwaysSample: readonly AlwaysSampled[];
  readonly scheduleDelayMs: number;
}

export type Env = Readonly<Record<string, string | undefined>>;

/** Tracing's settings, or undefined when it is off; `warnings` name the environment variables ignored. */
export interface ResolvedTracing {
  readonly settings: TracingSettings | undefined;
  readonly warnings: readonly ConfigIssue[];
}

/** The spec's rule: the base endpoint gets the signal's path for HTTP, and is the address for gRPC. */
function tracesUrl(base: string, protocol: OtlpProtocol): string {
  return protocol === "grpc" ? base : `${base.replace(/\/+$/, "")}/v1/traces`;
}

function set(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === "" ? undefined : trimmed;
}

function oneOf<T extends string>(
  name: string,
  value: string | undefined,
  allowed: readonly T[],
  warnings: ConfigIssue[],
): T | undefined {
  if (value === undefined) return undefined;
  const lower = value.toLowerCase();
  if ((allowed as readonly string[]).includes(lower)) return lower as T;
  warnings.push({ path: name, message: `"${value}" is not one of ${allowed.join(", ")}; ignored` });
  return undefined;
}

function delayFrom(value: string | undefined, warnings: ConfigIssue[]): number | undefined {
  if (value === undefined) return undefined;
  const delay = Number(value);
  if (Number.isInteger(delay) && delay >= 1) return delay;
  warnings.push({
    path: "OTEL_BSP_SCHEDULE_DELAY",
    message: `"${value}" is not a whole number of milliseconds; ignored`,
  });
  return undefined;
}

function ratioFrom(value: string | undefined, warnings: ConfigIssue[]): number | undefined {
  if (value === undefined) return undefined;
  const ratio = Number(value);
  if (Number.isFinite(ratio) && ratio >= 0 && ratio <= 1) return ratio;
  warnings.push({ path: "OTEL_TRACES_SAMPLER_ARG", message: `"${value}" is not a ratio in [0, 1]; ignored` });
  return undefined;
}

/** OTEL_RESOURCE_ATTRIBUTES: `key=value` pairs separated by commas, values percent-encoded. */
function parseResourceAttributes(value: string | undefined, warnings: ConfigIssue[]): Record<string, string> {
  const attributes: Record<string, string> = {};
  if (value === undefined) return attributes;
  for (const pair of value.split(",")) {
    if (pair.trim() === "") continue;
    const equals = pair.indexOf("=");
    const key = pair.slice(0, equals).trim();
    try {
      if (equals <= 0 || key === "") throw new Error("no key");
      attributes[key] = decodeURIComponent(pair.slice(equals + 1).trim());
    } catch {
      warnings.push({ path: "OTEL_RESOURCE_ATTRIBUTES", message: `"${pair.trim()}" is not key=value; ignored` });
    }
  }
  return attributes;
}

export function resolveTracing(config: TracingConfig, env: Env): ResolvedTracing {
  const warnings: ConfigIssue[] = [];
  if (config.enabled === false || (config.enabled === undefined && set(env.OTEL_SDK_DISABLED) === "true"))
    return { settings: undefined, warnings };
  const protocol =
    config.protocol ??
    oneOf("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", set(env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL), PROTOCOLS, warnings) ??
    oneOf("OTEL_EXPORTER_OTLP_PROTOCOL", set(env.OTEL_EXPORTER_OTLP_PROTOCOL), PROTOCOLS, warnings) ??
    "http/protobuf";
  const envBase = set(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  const url =
    config.tracesEndpoint ??
    (config.endpoint === undefined ? undefined : tracesUrl(config.endpoint, protocol)) ??
    set(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) ??
    (envBase === undefined ? undefined : tracesUrl(envBase, protocol));
  // Off: the other variables configure nothing, so nothing is said about them.
  if (url === undefined) return { settings: undefined, warnings: [] };
  const resourceAttributes = {
    ...parseResourceAttributes(set(env.OTEL_RESOURCE_ATTRIBUTES), warnings),
    ...config.resourceAttributes,
  };
  const serviceName =
    config.serviceName ??
    config.resourceAttributes["service.name"] ??
    set(env.OTEL_SERVICE_NAME) ??
    resourceAttributes["service.name"] ??
    DEFAULT_SERVICE_NAME;
  delete resourceAttributes["service.name"];
  const sampler =
    config.sampler ??
    oneOf("OTEL_TRACES_SAMPLER", set(env.OTEL_TRACES_SAMPLER), SAMPLERS, warnings) ??
    "parentbased_traceidratio";
  const ratio = config.ratio ?? ratioFrom(set(env.OTEL_TRACES_SAMPLER_ARG), warnings) ?? 1;
  return {
    settings: {
      url,
      protocol,
      serviceName,
      resourceAttributes,
      sampler,
      ratio,
      alwaysSample: ALWAYS_SAMPLED.filter((kind) => config.alwaysSample.includes(kind)),
      scheduleDelayMs: config.scheduleDelayMs ?? delayFrom(set(env.OTEL_BSP_SCHEDULE_DELAY), warnings) ?? 5_000,
    },
    warnings,
  };
}
