import pino from "pino";
import t from "tap";
import { tracingSchema } from "../../../src/tracing/config.js";
import { startTracing } from "../../../src/tracing/start.js";

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { lines, log };
}

t.test("no endpoint: no tracer (the runner then does no tracing work), and not a word", async (t) => {
  const { lines, log } = capture();
  const env = { OTEL_TRACES_SAMPLER: "xray", OTEL_EXPORTER_OTLP_PROTOCOL: "thrift" };
  t.equal(await startTracing(tracingSchema.parse({}), env, log, "1.0.0"), undefined);
  t.same(lines, []);
});

t.test("on: the variables it cannot use are named in warnings", async (t) => {
  const { lines, log } = capture();
  const env = { OTEL_TRACES_SAMPLER: "xray", OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" };
  const tracer = await startTracing(tracingSchema.parse({}), env, log, "1.0.0");
  t.match(lines, [
    { level: 40, variable: "OTEL_TRACES_SAMPLER", msg: /^tracing: "xray" is not one of/ },
    { level: 30, msg: "tracing on", sampler: "parentbased_traceidratio" },
  ]);
  await tracer?.shutdown(1_000);
});

t.test("each protocol's OTLP exporter loads and starts", async (t) => {
  for (const protocol of ["http/protobuf", "http/json", "grpc"] as const) {
    const { lines, log } = capture();
    const tracer = await startTracing(
      tracingSchema.parse({ protocol }),
      { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" },
      log,
      "1.0.0",
    );
    t.ok(tracer, protocol);
    t.match(lines.at(-1), {
      msg: "tracing on",
      protocol,
      url: protocol === "grpc" ? "http://127.0.0.1:4318" : "http://127.0.0.1:4318/v1/traces",
    });
    await tracer?.shutdown(1_000);
  }
});
