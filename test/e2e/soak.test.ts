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
  // Loose, because a minute is short and the machine is shared: catches a leak of several KiB
  // per request, not slow drift (that is what the 30-minute `make soak` is for).
  const mibPerMinute = report.rss.perMinute / 2 ** 20;
  t.ok(mibPerMinute < 24, `RSS slope ${mibPerMinute.toFixed(1)} MiB/min after warm-up`);
  t.ok(report.rss.last - report.rss.first < 96 * 2 ** 20, "RSS grew by less than 96 MiB in the minute");
});
