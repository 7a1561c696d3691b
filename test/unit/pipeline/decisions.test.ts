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

/** An exchange as the decision log reads it: its request id, and a trace id when it has one. */
const exchange = (requestId: string, traceId?: string) => ({
  request: { method: "POST", path: "/", authority: "", headers: new Map(), requestId, endOfStream: false },
  ...(traceId === undefined ? {} : { traceId }),
});

t.test("a decision is one info line with the request id, trace id and route", async (t) => {
  const { lines, log } = capture();
  const decide = createDecisionLog(log, () => 0);
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  decide("shed", exchange("abc-1", traceId), "chat", { reason: "shed.overload", priority: "sheddable", waitedMs: 0 });
  t.equal(lines.length, 1);
  t.match(lines[0], {
    level: 30,
    msg: "decision: shed",
    decision: "shed",
    requestId: "abc-1",
    trace_id: traceId,
    route: "chat",
    reason: "shed.overload",
    priority: "sheddable",
  });
  t.notOk("suppressed" in (lines[0] ?? {}));
  decide("reroute", exchange("abc-2"), "chat", {});
  t.notOk("trace_id" in (lines[1] ?? {}), "no trace, no trace id");
});

t.test("rate-limited per kind; the next line written reports how many were dropped", async (t) => {
  const { lines, log } = capture();
  let now = 0;
  const decide = createDecisionLog(log, () => now, 5);
  for (let i = 0; i < 12; i++) decide("shed", exchange(`s${i}`), "chat", {});
  decide("reroute", exchange("r0"), "chat", { tier: "heavy" });
  t.equal(lines.filter((line) => line.decision === "shed").length, 5, "a burst of five, then nothing");
  t.equal(lines.filter((line) => line.decision === "reroute").length, 1, "another kind has its own budget");
  now = 1_000;
  decide("shed", exchange("s12"), "chat", {});
  const last = lines.at(-1);
  t.match(last, { requestId: "s12", suppressed: 7 });
  now = 1_200;
  decide("shed", exchange("s13"), "chat", {});
  t.notOk("suppressed" in (lines.at(-1) ?? {}), "the count restarts after it was reported");
});
