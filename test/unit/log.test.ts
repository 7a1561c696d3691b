// log.components: a level per part of the guard, each line naming its component.
import { Writable } from "node:stream";
import t from "tap";
import { parseConfig } from "../../src/config/load.js";
import { ComponentLogs, createLogger, LOG_COMPONENTS } from "../../src/log.js";

function captured(): { readonly lines: () => { component?: string; msg: string }[]; readonly logs: ComponentLogs } {
  const written: string[] = [];
  const root = createLogger(
    "info",
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        written.push(chunk.toString());
        done();
      },
    }),
  );
  return { lines: () => written.map((line) => JSON.parse(line)), logs: new ComponentLogs(root) };
}

t.test("a component's level overrides log.level, for that component only", async (t) => {
  const { lines, logs } = captured();
  logs.apply({ level: "warn", components: { pipeline: "debug" } });
  logs.of("pipeline").debug("exchange detail");
  logs.of("pipeline").child({ requestId: "r1" }).debug("an exchange's own line");
  logs.of("grpc").info("quiet: grpc follows log.level");
  logs.root.info("quiet: lines outside the components follow log.level");
  logs.of("grpc").warn("loud enough");
  t.same(
    lines().map(({ component, msg }) => ({ component, msg })),
    [
      { component: "pipeline", msg: "exchange detail" },
      { component: "pipeline", msg: "an exchange's own line" },
      { component: "grpc", msg: "loud enough" },
    ],
  );
});

t.test("a component not listed logs at log.level, quieter as well as louder", async (t) => {
  const { logs } = captured();
  logs.apply({ level: "debug", components: { redis: "error" } });
  for (const component of Object.keys(LOG_COMPONENTS) as (keyof typeof LOG_COMPONENTS)[])
    t.equal(logs.of(component).level, component === "redis" ? "error" : "debug", component);
  t.equal(logs.root.level, "debug");
});

t.test("without settings every component takes the root's level", async (t) => {
  const logs = new ComponentLogs(createLogger("error"));
  t.equal(logs.of("tracing").level, "error");
});

t.test("apply changes the levels of the loggers already handed out (a reload)", async (t) => {
  const { lines, logs } = captured();
  logs.apply({ level: "info", components: {} });
  const grpc = logs.of("grpc");
  grpc.debug("before: dropped");
  logs.apply({ level: "info", components: { grpc: "debug" } });
  grpc.debug("after: written");
  logs.apply({ level: "info", components: {} });
  grpc.debug("back to info: dropped");
  t.same(
    lines().map((line) => line.msg),
    ["after: written"],
  );
});

t.test("log.components: defaults, unknown names and bad levels are errors at their path", async (t) => {
  const defaults = parseConfig("");
  t.ok(defaults.ok);
  if (defaults.ok) t.same(defaults.config.log, { level: "info", components: {} });
  const result = parseConfig("log: { level: warn, components: { pipline: debug, grpc: loud, pipeline: debug } }");
  t.notOk(result.ok);
  if (result.ok) return;
  t.same(result.errors.map((issue) => issue.path).sort(), ["log.components.grpc", "log.components.pipline"]);
  const byPath = new Map(result.errors.map((issue) => [issue.path, issue.message]));
  t.equal(byPath.get("log.components.pipline"), "unknown key");
  t.match(byPath.get("log.components.grpc"), /debug/, "the message lists the levels");
});
