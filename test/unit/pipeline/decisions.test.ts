import { Writable } from "node:stream";
import { pino } from "pino";
import t from "tap";
import { createDecisionLog } from "../../../src/pipeline/decisions.js";

function capture(): { lines: Record<string, unknown>[]; log: pino.Logger } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString("utf8")) as Record<string, unknown>);
      done();
    },
  });
  return { lines, log: pino({ level: "info" }, sink) };
}

t.test("a decision is one info line with the request id and route", async (t) => {
  const { lines, log } = capture();
  const decide = createDecisionLog(log, () => 0);
  decide("shed", "abc-1", "chat", { reason: "shed.overload", priority: "sheddable", waitedMs: 0 });
  t.equal(lines.length, 1);
  t.match(lines[0], {
    level: 30,
    msg: "decision: shed",
    decision: "shed",
    requestId: "abc-1",
    route: "chat",
    reason: "shed.overload",
    priority: "sheddable",
  });
  t.notOk("suppressed" in (lines[0] ?? {}));
});

t.test("rate-limited per kind; the next line written reports how many were dropped", async (t) => {
  const { lines, log } = capture();
  let now = 0;
  const decide = createDecisionLog(log, () => now, 5);
  for (let i = 0; i < 12; i++) decide("shed", `s${i}`, "chat", {});
  decide("reroute", "r0", "chat", { tier: "heavy" });
  t.equal(lines.filter((line) => line.decision === "shed").length, 5, "a burst of five, then nothing");
  t.equal(lines.filter((line) => line.decision === "reroute").length, 1, "another kind has its own budget");
  now = 1_000;
  decide("shed", "s12", "chat", {});
  const last = lines.at(-1);
  t.match(last, { requestId: "s12", suppressed: 7 });
  now = 1_200;
  decide("shed", "s13", "chat", {});
  t.notOk("suppressed" in (lines.at(-1) ?? {}), "the count restarts after it was reported");
});
