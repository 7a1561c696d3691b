import t from "tap";
import { parseConfig } from "../../../src/config/load.js";
import { tracingSchema } from "../../../src/tracing/config.js";
import { DEFAULT_SERVICE_NAME, resolveTracing } from "../../../src/tracing/settings.js";

const section = (value: unknown = {}) => tracingSchema.parse(value);

t.test("off unless an endpoint is set, by the section or the environment", async (t) => {
  t.equal(resolveTracing(section(), {}).settings, undefined);
  t.equal(resolveTracing(section({ sampler: "always_on" }), { OTEL_SERVICE_NAME: "x" }).settings, undefined);
  t.equal(resolveTracing(section(), { OTEL_EXPORTER_OTLP_ENDPOINT: "  " }).settings, undefined, "blank is unset");
  t.ok(resolveTracing(section(), { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }).settings);
  t.ok(resolveTracing(section({ endpoint: "http://c:4318" }), {}).settings);
});

t.test("enabled: false and OTEL_SDK_DISABLED switch it off; enabled: true overrides the latter", async (t) => {
  const env = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" };
  t.equal(resolveTracing(section(), env).settings, undefined);
  t.equal(resolveTracing(section({ enabled: false, endpoint: "http://c:4318" }), {}).settings, undefined);
  t.ok(resolveTracing(section({ enabled: true }), env).settings);
});

t.test("the endpoint: HTTP appends /v1/traces to the base, gRPC uses it as is, the traces URL wins", async (t) => {
  const url = (value: unknown, env: Record<string, string>) => resolveTracing(section(value), env).settings?.url;
  t.equal(url({}, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318/" }), "http://c:4318/v1/traces");
  t.equal(
    url({}, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4317", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }),
    "http://c:4317",
  );
  t.equal(
    url({}, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://t/x" }),
    "http://t/x",
    "the signal-specific variable over the base",
  );
  t.equal(
    url({ endpoint: "http://file:4318" }, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://t/x" }),
    "http://file:4318/v1/traces",
    "any key of the section over any variable",
  );
  t.equal(url({ endpoint: "http://a", tracesEndpoint: "http://b/traces" }, {}), "http://b/traces");
});

t.test("protocol: the section, then the traces variable, then the general one, then http/protobuf", async (t) => {
  const protocol = (value: unknown, env: Record<string, string>) =>
    resolveTracing(section({ endpoint: "http://c", ...(value as object) }), env).settings?.protocol;
  t.equal(protocol({}, {}), "http/protobuf");
  t.equal(protocol({}, { OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }), "http/json");
  t.equal(
    protocol({}, { OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "grpc" }),
    "grpc",
  );
  t.equal(protocol({ protocol: "http/json" }, { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "grpc" }), "http/json");
});

t.test("sampling: parent-based ratio 1 by default; the variables; the section over them", async (t) => {
  const sampling = (value: unknown, env: Record<string, string>) => {
    const settings = resolveTracing(section({ endpoint: "http://c", ...(value as object) }), env).settings;
    return [settings?.sampler, settings?.ratio];
  };
  t.same(sampling({}, {}), ["parentbased_traceidratio", 1]);
  t.same(sampling({}, { OTEL_TRACES_SAMPLER: "TraceIdRatio", OTEL_TRACES_SAMPLER_ARG: "0.25" }), [
    "traceidratio",
    0.25,
  ]);
  t.same(sampling({ sampler: "always_on", ratio: 0.5 }, { OTEL_TRACES_SAMPLER: "always_off" }), ["always_on", 0.5]);
});

t.test("the batch's export delay: OTEL_BSP_SCHEDULE_DELAY, the section over it, 5 s by default", async (t) => {
  const delay = (value: unknown, env: Record<string, string>) =>
    resolveTracing(section({ endpoint: "http://c", ...(value as object) }), env).settings?.scheduleDelayMs;
  t.equal(delay({}, {}), 5_000);
  t.equal(delay({}, { OTEL_BSP_SCHEDULE_DELAY: "250" }), 250);
  t.equal(delay({ scheduleDelayMs: 100 }, { OTEL_BSP_SCHEDULE_DELAY: "250" }), 100);
  const { warnings } = resolveTracing(section({ endpoint: "http://c" }), { OTEL_BSP_SCHEDULE_DELAY: "soon" });
  t.same(
    warnings.map((warning) => warning.path),
    ["OTEL_BSP_SCHEDULE_DELAY"],
  );
});

t.test("an environment variable the guard cannot use is named in a warning and ignored", async (t) => {
  const { settings, warnings } = resolveTracing(section(), {
    OTEL_EXPORTER_OTLP_ENDPOINT: "http://c",
    OTEL_EXPORTER_OTLP_PROTOCOL: "thrift",
    OTEL_TRACES_SAMPLER: "jaeger_remote",
    OTEL_TRACES_SAMPLER_ARG: "2",
    OTEL_RESOURCE_ATTRIBUTES: "ok=1,broken,bad=%E0%A4%A",
  });
  t.same(
    warnings.map((warning) => warning.path),
    [
      "OTEL_EXPORTER_OTLP_PROTOCOL",
      "OTEL_RESOURCE_ATTRIBUTES",
      "OTEL_RESOURCE_ATTRIBUTES",
      "OTEL_TRACES_SAMPLER",
      "OTEL_TRACES_SAMPLER_ARG",
    ],
  );
  t.equal(settings?.protocol, "http/protobuf");
  t.equal(settings?.sampler, "parentbased_traceidratio");
  t.equal(settings?.ratio, 1);
  t.same(settings?.resourceAttributes, { ok: "1" });
});

t.test("service name and resource attributes: the section's over the environment's", async (t) => {
  const resolved = (value: unknown, env: Record<string, string>) =>
    resolveTracing(section({ endpoint: "http://c", ...(value as object) }), env).settings;
  t.equal(resolved({}, {})?.serviceName, DEFAULT_SERVICE_NAME);
  t.equal(resolved({}, { OTEL_RESOURCE_ATTRIBUTES: "service.name=from-attrs" })?.serviceName, "from-attrs");
  t.equal(
    resolved({}, { OTEL_RESOURCE_ATTRIBUTES: "service.name=from-attrs", OTEL_SERVICE_NAME: "from-env" })?.serviceName,
    "from-env",
  );
  const settings = resolved(
    { serviceName: "from-file", resourceAttributes: { "deployment.environment.name": "prod" } },
    { OTEL_SERVICE_NAME: "from-env", OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=dev,k8s.pod.name=p%201" },
  );
  t.equal(settings?.serviceName, "from-file");
  t.same(settings?.resourceAttributes, { "deployment.environment.name": "prod", "k8s.pod.name": "p 1" });
});

t.test("in the config file, the section's errors carry their path from the top", async (t) => {
  const result = parseConfig("tracing:\n  ratio: 2\n  protocol: thrift\n");
  t.notOk(result.ok);
  t.same(result.ok ? [] : result.errors.map((error) => error.path).sort(), ["tracing.protocol", "tracing.ratio"]);
  t.ok(parseConfig("tracing: { endpoint: http://collector:4318, alwaysSample: [shed] }\n").ok);
});

t.test("the section's errors name their keys", async (t) => {
  const result = tracingSchema.safeParse({ endpoint: "ftp://c", ratio: 2, alwaysSample: ["sheds"], other: 1 });
  t.notOk(result.success);
  const paths = (result.error?.issues ?? []).map((issue) => issue.path.join(".") || issue.message);
  t.ok(paths.includes("endpoint"));
  t.ok(paths.includes("ratio"));
  t.ok(paths.includes("alwaysSample.0"));
  t.ok(
    paths.some((path) => path.includes("other")),
    "unknown keys are errors",
  );
});
