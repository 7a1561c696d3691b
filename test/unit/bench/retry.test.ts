import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import t from "tap";
import {
  closedLoopUsers,
  logicalRequest,
  retryable,
  retryDelayMs,
  type WindowedSample,
} from "../../../bench/shed/clients.js";
import type { Telemetry } from "../../../bench/shed/report.js";
import {
  parseScenario,
  type RetryRun,
  retryRunInconsistencies,
  retryTargets,
  scenarioName,
  summariseRetryRun,
  worstRuns,
} from "../../../bench/shed/retry-report.js";
import type { Sample } from "../../../bench/shed/traffic.js";
import type { BenchRequest, Priority } from "../../../bench/shed/workload.js";

const TELEMETRY: Telemetry = {
  serverUtilisation: 0,
  serverQueue: 0,
  guardLimitCost: null,
  guardLimitCv: null,
  guardInFlightCost: null,
  guardQueue: null,
};

const REQUEST: BenchRequest = { priority: "critical", body: "{}", workMs: 100, sloMs: 500 };

/** A server answering each request with the next of `answers` (the last one repeats); "hang" never answers. */
async function scripted(
  answers: readonly (number | "hang")[],
  headers: Record<string, string> = {},
): Promise<{ url: string; received: () => number; retryCounts: () => string[]; close: () => Promise<void> }> {
  let received = 0;
  const retryCounts: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    retryCounts.push(String(req.headers["x-stainless-retry-count"]));
    const answer = answers[Math.min(received, answers.length - 1)];
    received++;
    if (answer === "hang") return;
    res.writeHead(answer ?? 200, answer === 200 ? { "x-demo-pool": "light" } : headers).end("{}");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    received: () => received,
    retryCounts: () => retryCounts,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

t.test("clients retry overload answers and silence, nothing else", async (t) => {
  t.same([429, 503, 504, 0, 200, 500, 400].map(retryable), [true, true, true, true, false, false, false]);
});

t.test(
  "immediate retries are at once; backoff grows with full jitter and waits what the answer asks, as the OpenAI SDKs do",
  async (t) => {
    t.equal(
      retryDelayMs("immediate", 3, 5, () => 0.5),
      0,
    );
    t.equal(
      retryDelayMs("backoff", 1, null, () => 0.5),
      250,
    );
    t.equal(
      retryDelayMs("backoff", 3, null, () => 0.5),
      1000,
    );
    t.equal(
      retryDelayMs("backoff", 10, null, () => 0.999_999),
      7999.992,
      "capped at 8 s",
    );
    t.equal(
      retryDelayMs("backoff", 1, 2_000, () => 0.5),
      2000,
      "the advertised wait exactly: the server spreads it",
    );
    t.equal(
      retryDelayMs("backoff", 1, 120_000, () => 0.5),
      250,
      "a wait beyond 60 s is not waited for",
    );
  },
);

t.test("a logical request retries up to three times and succeeds when any attempt does", async (t) => {
  const storm = await scripted([429]);
  t.teardown(storm.close);
  const failed = await logicalRequest(storm.url, REQUEST, "immediate", 1_000, Math.random);
  t.equal(failed.attempts.length, 4, "one attempt and three retries");
  t.notOk(failed.ok);
  t.equal(storm.received(), 4);
  t.same(storm.retryCounts(), ["0", "1", "2", "3"], "attempts numbered as the OpenAI SDKs number them");

  const once = await logicalRequest(storm.url, REQUEST, "none", 1_000, Math.random);
  t.equal(once.attempts.length, 1, "policy none sends one attempt");

  const recovering = await scripted([503, "hang", 200], { "retry-after": "0" });
  t.teardown(recovering.close);
  const ok = await logicalRequest(recovering.url, REQUEST, "backoff", 200, () => 0);
  t.same(
    ok.attempts.map((attempt) => attempt.status),
    [503, 0, 200],
    "a 503 and a client timeout were retried",
  );
  t.equal(ok.attempts[0]?.retryAfterMs, 0, "Retry-After read");
  t.ok(ok.ok);
  t.ok(ok.ms >= 200, "the logical latency includes the timed-out attempt");

  const broken = await scripted([500, 200]);
  t.teardown(broken.close);
  const notRetried = await logicalRequest(broken.url, REQUEST, "immediate", 1_000, Math.random);
  t.equal(notRetried.attempts.length, 1, "a 500 is not retried");
});

t.test("closed-loop users wait for each logical request before the next and stop at the window's end", async (t) => {
  const server = await scripted([200]);
  t.teardown(server.close);
  const samples = await closedLoopUsers(
    server.url,
    { users: 3, thinkMs: 20, attemptTimeoutMs: 1_000, policy: "none", seed: 1 },
    300,
    () => REQUEST,
  );
  t.ok(samples.length >= 3, `${samples.length} logical requests`);
  t.equal(server.received(), samples.length, "every request started was answered and counted");
  t.ok(
    samples.every((sample) => sample.ok),
    "all succeeded",
  );
});

function attempt(
  status: number,
  fromModel: boolean,
  outcome = String(status),
  retryAfterMs: number | null = null,
): Sample {
  return {
    priority: "standard",
    status,
    ms: 10,
    workMs: 100,
    good: status === 200,
    shed: (status === 429 || status === 503) && !fromModel,
    lagMs: 0,
    outcome,
    fromModel,
    retryAfterMs,
    budgetHeaders: null,
  };
}

/** A logical request of REQUEST's size: its SLO is 500 ms. */
function logical(priority: Priority, ms: number, attempts: readonly Sample[], endedInWindow = true): WindowedSample {
  const ok = attempts.some((item) => item.status === 200);
  return { priority, ok, good: ok && ms <= 500, ms, workMs: 100, attempts, endedInWindow };
}

function run(samples: readonly WindowedSample[], upstreamAttempts: number, repeat = 1): RetryRun {
  return summariseRetryRun({
    variant: "guard",
    scenario: { policy: "immediate", load: 4 },
    repeat,
    users: 10,
    durationMs: 2_000,
    samples,
    upstream: { attempts: upstreamAttempts, errors: 0 },
    capacityPerSecond: 2,
    telemetry: TELEMETRY,
  });
}

t.test("a run counts logical requests, attempts, the upstream's share and the guard's own answers", async (t) => {
  const shed = attempt(429, false, "429 shed.overload", 180);
  const circuit = attempt(503, false, "503 shed.circuit_open", 5_000);
  const samples = [
    logical("critical", 100, [attempt(200, true)]),
    logical("critical", 600, [shed, shed, attempt(200, true)]),
    logical("standard", 50, [shed, circuit, attempt(504, false), attempt(0, false)]),
    logical("critical", 200, [attempt(200, true)], false),
  ];
  const result = run(samples, 4);
  t.match(result, {
    scenario: "immediate@4x",
    logical: 4,
    succeeded: 3,
    failed: 1,
    succeededInWindow: 2,
    goodputPerSecond: 1,
    goodput: 0.5,
    goodputWithinSlo: 0.25,
    critical: { logical: 3, succeeded: 3, successRate: 1, failures: {} },
    clientAttempts: 9,
    upstreamAttempts: 4,
    amplification: 1,
    clientAttemptsPerLogical: 2.25,
    shedAttempts: 4,
    shedShare: 0.4444,
    shedByClass: { standard: 4 },
    own5xx: 2,
    circuitOpenAnswers: 1,
    successP99Ms: 600,
    attemptOutcomes: { "200": 3, "429 shed.overload": 3, "503 shed.circuit_open": 1, "504": 1, "0": 1 },
    retryAfterMs: { "≤250": 3, "≤5000": 1 },
  });
  t.same(retryRunInconsistencies(result), [], "its counts add up");
  t.same(retryRunInconsistencies({ ...result, upstreamAttempts: 10, succeeded: 4 }), [
    "succeeded + failed ≠ logical requests",
    "the upstream received more attempts than were sent",
  ]);
});

t.test("the worst run per metric is reported, with the issue's targets on it", async (t) => {
  const good = run([logical("critical", 100, [attempt(200, true)]), logical("standard", 100, [attempt(200, true)])], 2);
  const bad = run(
    [logical("critical", 900, [attempt(200, true)]), logical("critical", 100, [attempt(0, false)])],
    3,
    2,
  );
  t.same(bad.critical.failures, { "0": 1 }, "a failed critical request by its last attempt's outcome");
  const [worst, ...rest] = worstRuns([good, bad]);
  t.same(rest, []);
  t.match(worst, {
    variant: "guard",
    scenario: "immediate@4x",
    runs: 2,
    goodput: 0.25,
    goodputWithinSlo: 0,
    criticalSuccessRate: 0.5,
    amplification: 1.5,
    successP99Ms: 900,
  });
  if (worst === undefined) return;
  t.same(
    retryTargets(worst).map((target) => target.met),
    [false, false, false, true],
    "goodput, critical success and amplification missed; no circuit opened",
  );
  t.same(
    retryTargets({ ...worst, load: 1, policy: "backoff", shedShare: 0.01 }).map((target) => target.text),
    ["shed share ≤ 2%: 1.0%"],
  );
});

t.test("scenarios parse from the command line", async (t) => {
  t.same(parseScenario("immediate@4"), { policy: "immediate", load: 4 });
  t.same(parseScenario("backoff@0.5x"), { policy: "backoff", load: 0.5 });
  t.same(parseScenario("immediate@4+hog"), { policy: "immediate", load: 4, cpuHog: true });
  t.equal(scenarioName({ policy: "immediate", load: 4, cpuHog: true }), "immediate@4x+hog");
  t.throws(() => parseScenario("eager@4"), /expected <none\|backoff\|immediate>@<load>\[\+hog\]/);
});
