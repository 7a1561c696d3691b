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
