import t from "tap";
import { parseStat, parseStatusKb } from "../../../bench/pipeline/procfs.js";
import { isNoisy, median, parseH2loadLog, relativeSpread, summariseLatency } from "../../../bench/pipeline/stats.js";

t.test("h2load log rows: start µs, status, duration µs; broken lines are skipped", async (t) => {
  const rows = parseH2loadLog(
    "1795559308005942\t200\t12645\n1795559308005928\t429\t800\n1795559308\t200\n\nx\ty\tz\n17955593080\t-1\t5000\n",
  );
  t.same(rows, [
    { startUs: 1795559308005942, status: 200, durationUs: 12645 },
    { startUs: 1795559308005928, status: 429, durationUs: 800 },
    { startUs: 17955593080, status: -1, durationUs: 5000 },
  ]);
});

t.test("latency is summarised over 2xx answers; everything else is an error, counted by status", async (t) => {
  const summary = summariseLatency([
    { startUs: 0, status: 200, durationUs: 1000 },
    { startUs: 0, status: 200, durationUs: 3000 },
    { startUs: 0, status: 429, durationUs: 100 },
    { startUs: 0, status: -1, durationUs: 100 },
  ]);
  t.equal(summary.ok, 2);
  t.equal(summary.errors, 2);
  t.same(summary.statuses, { "200": 2, "429": 1, "-1": 1 });
  t.equal(summary.p50Ms, 1);
  t.equal(summary.maxMs, 3);
});

t.test("median and spread over runs; noisy when runs disagree", async (t) => {
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 2, 3]), 2.5);
  t.ok(Number.isNaN(median([])));
  t.equal(relativeSpread([1]), 0);
  t.equal(relativeSpread([1, 1.1, 1.2]), (1.2 - 1) / 1.1);
  t.equal(isNoisy([1, 1.1, 1.05], [1000, 990, 1010]), false);
  t.equal(isNoisy([1, 2, 1.05], [1000, 990, 1010]), true, "p50 spread");
  t.equal(isNoisy([1, 1, 1], [1000, 700, 1010]), true, "throughput spread");
});

t.test("/proc parsing: CPU ticks and parent after a command name with spaces; memory lines", async (t) => {
  const stat = "1234 (node my (app)) S 99 1234 1234 0 -1 4194560 500 0 0 0 150 25 0 0 20 0 11 0 1000 1000000 5000";
  t.same(parseStat(stat), { ppid: 99, cpuTicks: 175 });
  t.equal(parseStat("garbage"), undefined);
  const status = "Name:\tnode\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
  t.equal(parseStatusKb(status, "VmRSS"), 100);
  t.equal(parseStatusKb(status, "VmHWM"), 200);
  t.equal(parseStatusKb("Name:\tx\n", "VmRSS"), undefined);
});
