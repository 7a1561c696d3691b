import { Writable } from "node:stream";
import { pino } from "pino";
import { Registry } from "prom-client";
import t from "tap";
import { configSchema } from "../../../../src/config/schema.js";
import { stageConfigs } from "../../../../src/pipeline/build.js";
import { RecentViolations } from "../../../../src/pipeline/contracts/recent.js";
import { createContractsStage } from "../../../../src/pipeline/contracts/stage.js";
import { demoContracts } from "../../contracts/fixtures.js";

t.test("keeps the latest example per contract, version and rule, bounded", async (t) => {
  const recent = new RecentViolations(2);
  recent.record(
    "c",
    "v2",
    [
      { field: "score", rule: "double.gte_lte", message: "first" },
      { field: "other", rule: "double.gte_lte", message: "same rule, same response: not kept" },
    ],
    10,
  );
  t.same(recent.get("c", "v2", "double.gte_lte"), {
    contract: "c",
    modelVersion: "v2",
    rule: "double.gte_lte",
    field: "score",
    message: "first",
    seenAt: 10,
  });
  recent.record("c", "v2", [{ field: "choices[1].score", rule: "double.gte_lte", message: "later" }], 20);
  t.equal(recent.get("c", "v2", "double.gte_lte")?.message, "later", "a later violation replaces the example");
  recent.record("c", "v3", [{ field: "label", rule: "string.in", message: "x".repeat(1000) }], 30);
  t.equal(recent.get("c", "v3", "string.in")?.message.length, 240, "long messages are clipped");
  recent.record("d", "v1", [{ field: "$", rule: "json.syntax", message: "not JSON" }], 40);
  t.equal(recent.get("c", "v2", "double.gte_lte"), undefined, "the least recently updated example goes first");
  t.ok(recent.get("c", "v3", "string.in"));
  t.ok(recent.get("d", "v1", "json.syntax"));
});

t.test("the contracts stage records examples and logs one decision line with the request id", async (t) => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString("utf8")) as Record<string, unknown>);
      done();
    },
  });
  const config = configSchema.parse({
    routes: [
      { name: "sentiment", match: { pathPrefix: "/" }, contract: { message: "demo.v1.Sentiment", action: "shadow" } },
    ],
  });
  const stage = createContractsStage(
    stageConfigs(config).contracts,
    { registry: new Registry(), log: pino({ level: "info" }, sink), now: () => 5_000 },
    await demoContracts(),
  );
  const run = stage.start({
    request: {
      method: "POST",
      path: "/",
      authority: "x",
      headers: new Map([["authorization", "Bearer secret"]]),
      requestId: "req-42",
      endOfStream: true,
    },
    route: { name: "sentiment" },
    startedAt: 0,
    tenant: "anonymous",
    priority: "standard",
    extendDeadline: () => undefined,
  });
  await run?.onRequestHeaders?.();
  await run?.onResponseHeaders?.({
    status: 200,
    headers: new Map([
      ["content-type", "application/json"],
      ["x-model-version", "v9"],
    ]),
    endOfStream: false,
  });
  await run?.onResponseBody?.(
    new TextEncoder().encode(JSON.stringify({ label: "POSITIVE", score: 7, note: "PROMPT-MARKER" })),
  );
  t.same(stage.recentViolations.get("demo.v1.Sentiment", "v9", "double.gte_lte"), {
    contract: "demo.v1.Sentiment",
    modelVersion: "v9",
    rule: "double.gte_lte",
    field: "score",
    message: "must be greater than or equal to 0 and less than or equal to 1",
    seenAt: 5_000,
  });
  t.equal(lines.length, 1);
  t.match(lines[0], {
    decision: "contract_violation",
    requestId: "req-42",
    route: "sentiment",
    contract: "demo.v1.Sentiment",
    modelVersion: "v9",
    action: "shadow",
  });
  t.same(lines[0]?.rules, ["json.unknown_field", "double.gte_lte"]);
  t.notMatch(JSON.stringify(lines), /secret|PROMPT-MARKER/, "no header values or body content in the line");
});
