import t from "tap";
import type { BenchConfiguration } from "../../../bench/pipeline/configurations.js";
import { chatRequestBody } from "../../../bench/pipeline/configurations.js";
import { renderMarkdown, renderText } from "../../../bench/pipeline/render.js";
import {
  type BenchReport,
  buildConfigurationReports,
  checkTargets,
  headlineRate,
} from "../../../bench/pipeline/report.js";
import { type PointRun, type RoundResult, stageTimesOf } from "../../../bench/pipeline/runner.js";

function configuration(id: string, baseline = "a"): BenchConfiguration {
  return { id, title: id, notes: id, stackOptions: async () => ({}), uniqueUris: true, expectHeaders: {}, baseline };
}

function point(p50Ms: number, achievedRps: number, guardCpu: number | null = 50): PointRun {
  return {
    ok: 100,
    errors: 0,
    statuses: { "200": 100 },
    p50Ms,
    p99Ms: p50Ms * 2,
    p999Ms: p50Ms * 3,
    maxMs: p50Ms * 4,
    achievedRps,
    guardCpuUsPerRequest: guardCpu,
    envoyCpuUsPerRequest: 30,
    guardRssMb: guardCpu === null ? null : 100,
    urisWrapped: false,
    loadFailures: [],
  };
}

function round(id: string, index: number, p50Ms: number, maxRps: number, guardCpu: number | null = 50): RoundResult {
  return {
    configuration: id,
    round: index,
    points: { "open@1000": point(p50Ms, 1000, guardCpu), closed: point(p50Ms * 5, maxRps, guardCpu) },
    guardHwmMb: guardCpu === null ? null : 110 + index,
    cacheBytes: null,
    stageTimes:
      guardCpu === null
        ? null
        : {
            requests: 1000,
            handlerSeconds: 0.1 * index,
            stages: [
              { stage: "contracts", phase: "response_body", calls: 1000, seconds: 0.02 * index },
              { stage: "cache", phase: "request_body", calls: 500, seconds: 0.005 },
            ],
          },
    driftUsPerResponse: guardCpu === null ? null : index,
  };
}

function reportOf(configurations: BenchReport["configurations"], targets: BenchReport["targets"]): BenchReport {
  return {
    schema: "inference-guard-bench/1",
    label: "unit",
    command: "node dist/bench/pipeline/main.js",
    startedAt: "2026-01-01T00:00:00.000Z",
    wallSeconds: 60,
    machine: {
      cpuModel: "cpu",
      cpus: 2,
      memoryMb: 4096,
      kernel: "6",
      node: "v20",
      envoy: "1.40.0",
      h2load: "h2load",
      loadAverageStart: [1, 1, 1],
      loadAverageEnd: [2, 2, 2],
    },
    settings: {
      rates: [1000],
      durationSec: 6,
      closedDurationSec: 5,
      warmupSec: 2,
      connections: 10,
      closedConnections: 10,
      runs: 3,
      pin: false,
      requestBytes: 2048,
      noiseLimits: { p50: 0.25, throughput: 0.15 },
    },
    request: { path: "/v1/chat/completions", headers: [], bodyBytes: 2048, responseBytes: 1060 },
    configurations,
    targets,
  };
}

t.test("the chat request is exactly the asked size and valid JSON", async (t) => {
  const body = chatRequestBody(2048);
  t.equal(Buffer.byteLength(body), 2048);
  t.equal((JSON.parse(body) as { n: number }).n, 4);
  t.throws(() => chatRequestBody(10));
});

t.test("headline rate: the measured rate nearest 1000 rps", async (t) => {
  t.equal(headlineRate([200, 500, 1000, 2000]), 1000);
  t.equal(headlineRate([50]), 50);
  t.equal(headlineRate([]), null);
});

t.test("medians over runs, added latency vs the baseline, throughput ratio vs a, targets", async (t) => {
  const configs = [
    configuration("a"),
    configuration("b"),
    configuration("d"),
    configuration("d_redis"),
    configuration("e_upstream"),
    configuration("e", "e_upstream"),
  ];
  const rounds = [
    round("a", 1, 1.0, 2000, null),
    round("a", 2, 1.2, 2100, null),
    round("a", 3, 1.1, 1900, null),
    round("b", 1, 1.3, 1500),
    round("b", 2, 1.9, 1400),
    round("b", 3, 1.4, 1600),
    round("d", 1, 1.8, 1000),
    round("d", 2, 1.9, 1000),
    round("d", 3, 2.0, 1000),
    round("d_redis", 1, 1.9, 1000, 52),
    round("d_redis", 2, 2.0, 1000, 54),
    round("d_redis", 3, 2.1, 1000, 53),
    round("e_upstream", 1, 6, 900),
    round("e_upstream", 2, 6, 900),
    round("e_upstream", 3, 6, 900),
    round("e", 1, 1, 3000),
    round("e", 2, 1, 3000),
    round("e", 3, 1, 3000),
  ];
  const reports = buildConfigurationReports(configs, rounds, [1000]);
  const b = reports.find((report) => report.id === "b")!;
  t.equal(b.headline.p50Ms, 1.4);
  t.equal(Number(b.headline.addedP50Ms?.toFixed(6)), 0.3, "1.4 − 1.1");
  t.equal(b.headline.throughputRatio, 1500 / 2000);
  t.equal(b.headline.guardHwmMb, 113, "largest high-water mark over rounds");
  t.equal(b.headline.noisy, true, "p50 1.3..1.9 spreads more than 25%");
  t.equal(reports.find((report) => report.id === "a")!.headline.guardCpuUsPerRequest, null);
  t.equal(reports.find((report) => report.id === "e")!.headline.addedP50Ms, -5, "vs its own baseline");
  const targets = checkTargets(reports);
  t.same(
    targets.map((target) => target.met),
    [false, true, true, true, true, false, true],
  );
  t.equal(targets[4]?.value, 6, "hit speed-up = 6 ms ÷ 1 ms");
  t.equal(targets[5]?.value, 53 / 50, "d_redis: CPU per request 53 µs ÷ d's 50 (limit 1.05)");

  const report = reportOf(reports, targets);
  t.match(renderText(report), /MISSED/);
  const markdown = renderMarkdown(report);
  t.match(markdown, /\| b \| 1\.40 \|/);
  t.match(markdown, /noisy/);
});

t.test("latency targets show the peer doing the same ext_proc exchange, when it ran", async (t) => {
  const configs = [configuration("a"), configuration("b"), configuration("d"), configuration("f")];
  const rounds = [
    round("a", 1, 1.0, 2000, null),
    round("b", 1, 1.5, 1500),
    round("d", 1, 3.0, 1000),
    round("f", 1, 1.25, 1800),
  ];
  const reports = buildConfigurationReports(configs, rounds, [1000]);
  const targets = checkTargets(reports);
  t.same(targets[0]?.peer, { id: "f", value: 0.25 }, "f's added p50: 1.25 − 1.0 ms");
  t.same(targets[1]?.peer, { id: "f", value: 0.5 }, "f's added p99: 2.5 − 2.0 ms");
  t.equal(targets[2]?.peer, null, "f_d did not run");
  t.equal(targets[5]?.peer, null, "memory has no peer comparison");
  const markdown = renderMarkdown(reportOf(reports, targets));
  t.match(markdown, /\| f: 0\.25 \|/);
});

t.test(
  "stage times: medians per request over rounds, slowest first, beside the handlers and the profile",
  async (t) => {
    const configs = [configuration("a"), configuration("d")];
    const rounds = [
      round("a", 1, 1, 2000, null),
      round("d", 1, 2, 1000),
      round("d", 2, 2, 1000),
      round("d", 3, 2, 1000),
    ];
    const reports = buildConfigurationReports(configs, rounds, [1000]);
    t.equal(reports[0]?.stages, null, "no guard, no stages");
    const stages = reports[1]?.stages;
    t.equal(stages?.handlerUsPerRequest, 200, "median of 100, 200, 300 µs");
    t.same(
      stages?.stages.map(({ stage, callsPerRequest, usPerCall, usPerRequest }) => [
        stage,
        callsPerRequest,
        Math.round(usPerCall),
        Math.round(usPerRequest),
      ]),
      [
        ["contracts", 1, 40, 40],
        ["cache", 0.5, 10, 5],
      ],
    );
    t.equal(stages?.driftUsPerResponse, 2);
    const markdown = renderMarkdown(reportOf(reports, checkTargets(reports)));
    t.match(markdown, /## Time in the guard's stages/);
    t.match(markdown, /\| d \| contracts \| response_body \| 1\.00 \| 40\.0 \| 40\.0 \|/);
    t.match(markdown, /\| d \| drift monitor \(profile\) \|/);
  },
);

t.test("stage times are read from the guard's metrics", async (t) => {
  const metrics = [
    "# TYPE guard_requests_total counter",
    'guard_requests_total{route="chat"} 40',
    'guard_requests_total{route="other"} 10',
    "# TYPE guard_extproc_message_seconds histogram",
    "guard_extproc_message_seconds_sum 0.01",
    "# TYPE guard_stage_duration_seconds histogram",
    'guard_stage_duration_seconds_sum{stage="cache",phase="request_body"} 0.002',
    'guard_stage_duration_seconds_count{stage="cache",phase="request_body"} 50',
  ].join("\n");
  t.same(stageTimesOf(metrics), {
    requests: 50,
    handlerSeconds: 0.01,
    stages: [{ stage: "cache", phase: "request_body", calls: 50, seconds: 0.002 }],
  });
});
