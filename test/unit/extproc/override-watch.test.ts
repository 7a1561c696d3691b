import { pino } from "pino";
import t from "tap";
import { IGNORED_AFTER_MISSES, ModeOverrideWatch } from "../../../src/extproc/override-watch.js";
import { StreamProcessor } from "../../../src/extproc/stream.js";
import { createCoreMetrics } from "../../../src/metrics/registry.js";
import { Pipeline } from "../../../src/pipeline/pipeline.js";
import type { Stage } from "../../../src/pipeline/types.js";
import { counterValue, harness, requestHeaders, responseBody, responseHeaders, route } from "../../helpers/frames.js";

function recordingLog(): { log: pino.Logger; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { log, lines };
}

async function gauge(metrics: ReturnType<typeof createCoreMetrics>): Promise<number | undefined> {
  return (await metrics.modeOverrideIgnored.get()).values[0]?.value;
}

t.test("bodies that never come, many in a row, are an ignored mode_override; one that comes clears it", async (t) => {
  const metrics = createCoreMetrics("test");
  const { log, lines } = recordingLog();
  const watch = new ModeOverrideWatch(metrics.modeOverrideIgnored, log);
  t.equal(await gauge(metrics), 0, "0 from the start, so the series exists");
  for (let miss = 1; miss < IGNORED_AFTER_MISSES; miss++) watch.asked(false);
  t.notOk(watch.ignored, "a few clients that left before the first byte are not a misconfiguration");
  watch.asked(false);
  t.ok(watch.ignored);
  t.equal(await gauge(metrics), 1);
  t.match(lines, [{ level: 40, msg: /allow_mode_override: true/ }], "one warning that says what to set");
  for (let miss = 0; miss < 10; miss++) watch.asked(false);
  t.equal(lines.length, 1, "said once, not per response");
  watch.asked(true);
  t.notOk(watch.ignored);
  t.equal(await gauge(metrics), 0);
  t.match(lines[1], { level: 30, msg: /honoured/ });
});

t.test("a client that leaves long after the guard asked is neither a miss nor a success", async (t) => {
  const wantsHeaders: Stage = {
    name: "probe",
    start: () => ({ onRequestHeaders: () => ({ type: "continue", needs: { responseHeaders: true } }) }),
  };
  const metrics = createCoreMetrics("test");
  const watch = new ModeOverrideWatch(metrics.modeOverrideIgnored, pino({ level: "silent" }));
  for (let miss = 1; miss < IGNORED_AFTER_MISSES; miss++) watch.asked(false);
  const log = pino({ level: "silent" });
  let clock = 0;
  const pipeline = new Pipeline([route("test")], [wantsHeaders], { metrics, log, now: () => clock });
  const processor = new StreamProcessor(
    { pipeline: () => pipeline, metrics, log, now: () => clock, overrideWatch: watch },
    () => {},
  );
  await processor.handle(requestHeaders({}, true));
  clock = 30_000;
  processor.close();
  t.notOk(watch.ignored, "not counted as Envoy closing at once");
  t.equal(await counterValue(metrics, "guard_extproc_anomalies_total", { kind: "asked_frame_missing" }), 1);
  watch.asked(false);
  t.ok(watch.ignored, "nor did it reset the count");
});

t.test("a body that comes between misses starts the count again", async (t) => {
  const metrics = createCoreMetrics("test");
  const watch = new ModeOverrideWatch(metrics.modeOverrideIgnored, pino({ level: "silent" }));
  for (let round = 0; round < 3; round++) {
    for (let miss = 1; miss < IGNORED_AFTER_MISSES; miss++) watch.asked(false);
    watch.asked(true);
  }
  t.notOk(watch.ignored);
  t.equal(await gauge(metrics), 0);
});

t.test("each stream tells the watch whether Envoy sent the phases it asked for", async (t) => {
  const wantsBody: Stage = {
    name: "probe",
    start: () => ({
      onRequestHeaders: () => ({ type: "continue", needs: { responseHeaders: true, responseBody: true } }),
    }),
  };
  const metrics = createCoreMetrics("test");
  const watch = new ModeOverrideWatch(metrics.modeOverrideIgnored, pino({ level: "silent" }));
  for (let stream = 0; stream < IGNORED_AFTER_MISSES; stream++) {
    const h = harness([wantsBody], undefined, metrics, { overrideWatch: watch });
    await h.feed(requestHeaders({}, true), responseHeaders(200));
    // Envoy dropped the body's override: it closes the stream at once, with no body frame.
    h.processor.close();
  }
  t.ok(watch.ignored);
  t.equal(
    await counterValue(metrics, "guard_extproc_anomalies_total", { kind: "asked_frame_missing" }),
    IGNORED_AFTER_MISSES,
  );

  const h = harness([wantsBody], undefined, metrics, { overrideWatch: watch });
  await h.feed(requestHeaders({}, true), responseHeaders(200), responseBody("{}"));
  h.processor.close();
  t.notOk(watch.ignored, "a stream that got every phase it asked for clears it");
  t.equal(
    await counterValue(metrics, "guard_extproc_anomalies_total", { kind: "asked_frame_missing" }),
    IGNORED_AFTER_MISSES,
    "a completed exchange is no miss",
  );

  const noBody = harness([wantsBody], undefined, metrics, { overrideWatch: watch });
  await noBody.feed(requestHeaders({}, true), responseHeaders(204, {}, true));
  noBody.processor.close();
  t.equal(
    await counterValue(metrics, "guard_extproc_anomalies_total", { kind: "asked_frame_missing" }),
    IGNORED_AFTER_MISSES,
    "a response without a body was never asked for one",
  );
});
