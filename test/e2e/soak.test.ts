// The CI soak: 60 s of the `make soak` traffic mix (every route, cache hits and misses, contract
// violations, sheds). No unexpected 5xx, and the guard's memory does not keep growing.
import t from "tap";
import { runSoak, summarise } from "../../bench/soak.js";

t.test("60 s of mixed traffic: no unexpected 5xx, no memory growth", async (t) => {
  const report = await runSoak({ durationMs: 60_000, rate: 60, sampleEveryMs: 2_000 });
  t.comment(summarise(report));
  t.ok(report.requests > 1_000, `${report.requests} requests`);
  t.equal(report.unexpected5xx, 0, `no unexpected 5xx ${JSON.stringify(report.unexpectedExamples.slice(0, 3))}`);
  t.ok((report.statuses["200"] ?? 0) > report.requests / 2, "mostly served");
  t.ok(Object.keys(report.byKind).length >= 6, "every kind of traffic was sent");
  // A leak of 1 KiB per request would grow ~3.5 MiB/min at this rate on top of noise; the bound
  // is loose because a minute is short and the machine is shared, and tight enough for real leaks.
  const mibPerMinute = report.rss.perMinute / 2 ** 20;
  t.ok(mibPerMinute < 24, `RSS slope ${mibPerMinute.toFixed(1)} MiB/min after warm-up`);
  t.ok(report.rss.last - report.rss.first < 96 * 2 ** 20, "RSS grew by less than 96 MiB in the minute");
});
