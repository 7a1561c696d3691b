// The CI soak: 60 s of the `make soak` traffic mix (every route, cache hits and misses, contract
// violations, sheds). No unexpected 5xx, and the guard's memory does not keep growing.
import t from "tap";
import { runSoak, summarise } from "../../bench/soak.js";

t.test("60 s of mixed traffic: no unexpected 5xx, no memory growth", async (t) => {
  // 60/s: well above the 33 stream resets/s at which Node's HTTP/2 rapid-reset protection would
  // tear the guard's connection down if streams did not end gracefully (docs/reliability.md).
  const report = await runSoak({ durationMs: 60_000, rate: 60, sampleEveryMs: 2_000 });
  t.comment(summarise(report));
  t.ok(report.requests > 2_000, `${report.requests} requests`);
  t.equal(report.unexpected5xx, 0, `no unexpected 5xx ${JSON.stringify(report.unexpectedExamples.slice(0, 3))}`);
  t.ok((report.statuses["200"] ?? 0) > report.requests / 2, "mostly served");
  t.ok(Object.keys(report.byKind).length >= 6, "every kind of traffic was sent");
  // Envoy closes each ext_proc stream gracefully and resets one still open 1 s after its half-close:
  // the guard ends a stream as its exchange completes, so none may be reset (hit, shed or violated).
  t.equal(
    report.streamEnds.halfCloseResets,
    0,
    `no stream reset after Envoy's half-close ${JSON.stringify(report.streamEnds)}`,
  );
  // A minute sees one rise of V8's GC sawtooth, not a trend: the heap climbs for ~100 s between
  // major collections (bench/results/soak-*.json), and RSS with it — 1 to 30 MiB a minute across
  // a dozen CI runs at a flat heap floor — so a slope fitted here measures the GC, and the
  // 30-minute `make soak` fits the slopes. What a minute can bound: growth beyond twice the
  // largest rise seen (~30 MiB) is a leak of ~18 KiB or more per request at 60 requests/s.
  const grownMiB = (report.rss.last - report.rss.first) / 2 ** 20;
  t.ok(grownMiB < 64, `RSS grew ${grownMiB.toFixed(1)} MiB in the minute (bound 64)`);
});

t.test(
  "30 s of the same mix beside cancelling and hostile clients: the abusers are refused, nothing else",
  async (t) => {
    const report = await runSoak({
      durationMs: 30_000,
      rate: 60,
      sampleEveryMs: 2_000,
      cancelShare: 0.2,
      abusers: ["flood", "bodies", "idle"],
    });
    t.comment(summarise(report));
    t.equal(report.unexpected5xx, 0, `no unexpected 5xx ${JSON.stringify(report.unexpectedExamples.slice(0, 3))}`);
    t.ok(
      (report.cancelled["200 cancelled"] ?? 0) > 100,
      `streams cancelled mid-answer ${JSON.stringify(report.cancelled)}`,
    );
    t.same(report.envoyGuardConnections, { goaway: 0, destroyedWithActiveStreams: 0 }, "Envoy's connections untouched");
    t.notOk(report.envoyExtProc.streams_failed, "no ext_proc stream failed");
    const outcomes = Object.fromEntries(report.abusers.map((abuser) => [abuser.name, abuser.outcomes]));
    t.ok((outcomes["idle streams"]?.["grpc-status 4"] ?? 0) > 0, "idle streams end with DEADLINE_EXCEEDED");
    // Past limits.maxMessageBytes (16 MiB): RESOURCE_EXHAUSTED at the prefix, then RST_STREAM(NO_ERROR)
    // to stop the sender; its client may see only that reset, or Node's own ENHANCE_YOUR_CALM (11);
    // one may still be on its way when the run stops.
    const bodies = Object.entries(outcomes["60 MiB bodies"] ?? {});
    t.ok(bodies.length > 0, "60 MiB messages were sent");
    t.ok(
      bodies.every(([outcome]) => ["grpc-status 8", "rst 0", "rst 11", "open"].includes(outcome)),
      `each refused before it was read ${JSON.stringify(Object.fromEntries(bodies))}`,
    );
    t.same(
      Object.keys(outcomes["zero-window flood"] ?? {}),
      ["open"],
      "the zero-window streams are held by flow control",
    );
    // The memory budget (limits.maxBufferedBytes, 128 MiB) bounds what the guard holds; messages it
    // is done with wait for V8's next collection, which their external memory's growth brings on.
    const grownMiB = (report.rssMaxBytes - report.rss.first) / 2 ** 20;
    t.ok(grownMiB < 256, `RSS grew at most ${grownMiB.toFixed(0)} MiB (budget 128 MiB and its garbage)`);
  },
);
