// Turns the `tracing` section and the environment into a tracer, or none: with tracing off the SDK
// is never loaded and the pipeline gets no tracer, so it creates no span objects at all.
import type { Logger } from "pino";
import type { ExchangeTracer } from "./api.js";
import type { TracingConfig } from "./config.js";
import { type Env, resolveTracing } from "./settings.js";

export async function startTracing(
  config: TracingConfig,
  env: Env,
  log: Logger,
  serviceVersion: string,
): Promise<ExchangeTracer | undefined> {
  const { settings, warnings } = resolveTracing(config, env);
  for (const warning of warnings) log.warn({ variable: warning.path }, `tracing: ${warning.message}`);
  if (settings === undefined) return undefined;
  const { createOtelTracer } = await import("./otel.js");
  const tracer = await createOtelTracer(settings, { serviceVersion, log });
  log.info(
    {
      url: settings.url,
      protocol: settings.protocol,
      serviceName: settings.serviceName,
      sampler: settings.sampler,
      ratio: settings.ratio,
      alwaysSample: settings.alwaysSample,
    },
    "tracing on",
  );
  return tracer;
}
