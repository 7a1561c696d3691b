// `make bench-vs-go`, `make bench-transport` and `make bench-streaming` stay runnable: each harness
// measures every configuration once at a tiny load, including the Go reference ext_proc peer
// (configurations f and f_d, and the streaming peer with -stream; bench/peers/go-extproc, built here
// through the Makefile as those targets build it), and writes a well-formed report.
// Only the shape of the report is checked; its numbers mean nothing at this load.
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import type { BenchReport } from "../../bench/pipeline/report.js";
import type { StreamingReport } from "../../bench/streaming/report.js";
import { PROJECT_ROOT } from "../../src/devstack/envoy.js";
import { freePort } from "../../src/devstack/ports.js";

function run(args: readonly string[], bench = "pipeline"): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, "dist", "bench", bench, "main.js"), ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    child.once("exit", (code) => resolve({ code, output }));
  });
}

t.setTimeout(300_000);

/** The Makefile's $(GO_PEER): `go build` on first use (module dependencies from the Go proxy), then up to date. */
const GO_PEER = ".tools/go-extproc-peer";
const built = spawnSync("make", ["--no-print-directory", GO_PEER], {
  cwd: PROJECT_ROOT,
  encoding: "utf8",
  timeout: 240_000,
});
t.equal(built.status, 0, `make ${GO_PEER}: ${built.stdout}${built.stderr}`);
const goPeer = (address: string, ...flags: string[]): string =>
  [join(PROJECT_ROOT, GO_PEER), "-addr", address, ...flags].join(" ");

t.test("the benchmark harness runs every configuration and writes its report", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "bench-smoke-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const peerAddress = `127.0.0.1:${await freePort()}`;
  const { code, output } = await run([
    "--quick",
    "--out",
    dir,
    "--peer-cmd",
    goPeer(peerAddress),
    "--peer-bodies-cmd",
    goPeer(peerAddress, "-bodies"),
    "--peer-addr",
    peerAddress,
  ]);
  t.equal(code, 0, output.slice(-3_000));
  t.match(output, /config\s+p50 ms/, "prints the table");

  const files = (await readdir(dir)).filter((name) => /^\d{4}-\d{2}-\d{2}\.(json|md)$/.test(name)).sort();
  t.equal(files.length, 2, `a .json and a .md: ${files.join(", ")}`);
  const report = JSON.parse(await readFile(join(dir, files[0]!), "utf8")) as BenchReport;
  t.equal(report.schema, "inference-guard-bench/1");
  t.equal(report.request.bodyBytes, 2048);
  t.ok((report.request.responseBytes ?? 0) > 900, "about 1 KB answers");
  t.same(
    report.configurations.map((configuration) => configuration.id),
    ["a", "b", "c", "d", "d_redis", "d_uds", "e_upstream", "e", "f", "f_d"],
  );
  for (const configuration of report.configurations) {
    t.test(configuration.id, async (t) => {
      t.equal(configuration.rounds.length, 1);
      const round = configuration.rounds[0]!;
      t.equal(round.error, undefined);
      t.same(round.probe?.mismatches, [], "the probe request showed the configuration's headers");
      t.same(
        configuration.points.map((point) => point.key),
        ["open@50", "closed"],
      );
      for (const point of configuration.points) t.ok((point.median.achievedRps ?? 0) > 0, `${point.key}: answers`);
      t.ok((configuration.headline.maxRps ?? 0) > 0);
      t.ok(configuration.headline.p50Ms !== null && configuration.headline.p50Ms > 0);
      t.ok(configuration.headline.envoyCpuUsPerRequest !== null);
      if (configuration.id === "a")
        t.equal(configuration.headline.guardCpuUsPerRequest, null, "no guard, no guard CPU");
      else {
        t.ok((configuration.headline.guardCpuUsPerRequest ?? -1) >= 0, "guard (or peer) CPU measured");
        t.ok((configuration.headline.guardRssMb ?? 0) > 0, "guard (or peer) memory measured");
      }
    });
  }
  const hit = report.configurations.find((configuration) => configuration.id === "e");
  t.equal(hit?.rounds[0]?.probe?.headers["x-guard-cache"], "hit");
  t.equal(report.targets.length, 7);
  t.ok(
    report.targets.every((target) => target.met === null),
    "targets are only judged at 1000 rps",
  );
  const markdown = await readFile(join(dir, files[1]!), "utf8");
  t.match(markdown, /## Summary/);
  t.match(markdown, /\| f \|/);
  t.match(markdown, /\| f_d \|/);
});

t.test("the transport benchmark measures the guard and a peer and writes its report", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "bench-transport-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const peerAddress = `127.0.0.1:${await freePort()}`;
  const { code, output } = await run(
    [
      "--quick",
      "--out",
      dir,
      "--peer-cmd",
      goPeer(peerAddress),
      "--peer-addr",
      peerAddress,
      "--peer-name",
      "Go reference",
    ],
    "transport",
  );
  t.equal(code, 0, output.slice(-3_000));
  t.match(output, /\| inference-guard \(pass-through route\) \|/, "prints the guard's row");
  const file = (await readdir(dir)).find((name) => name.startsWith("transport-") && name.endsWith(".json"));
  t.ok(file, "wrote transport-<date>.json");
  const report = JSON.parse(await readFile(join(dir, file ?? ""), "utf8")) as {
    servers: {
      name: string;
      serial: { meanMs: number; failed: number };
      pipelined: { streamsPerSecond: number; cpuUsPerStream: number; failed: number };
      rssMb: number;
    }[];
  };
  t.same(
    report.servers.map((server) => server.name),
    ["inference-guard (pass-through route)", "Go reference"],
  );
  for (const server of report.servers) {
    t.equal(server.serial.failed + server.pipelined.failed, 0, `${server.name}: every stream ended OK`);
    t.ok(
      server.serial.meanMs > 0 && server.pipelined.streamsPerSecond > 0,
      `${server.name}: latency and throughput measured`,
    );
    t.ok(server.pipelined.cpuUsPerStream >= 0 && server.rssMb > 0, `${server.name}: CPU and memory measured`);
  }
});

t.test("the streaming benchmark streams through every configuration and writes its report", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "bench-streaming-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const peerAddress = `127.0.0.1:${await freePort()}`;
  const { code, output } = await run(
    ["--quick", "--out", dir, "--peer-cmd", goPeer(peerAddress, "-stream"), "--peer-addr", peerAddress],
    "streaming",
  );
  t.equal(code, 0, output.slice(-3_000));
  t.match(output, /config\s+TTFT p50/, "prints the table");
  const files = (await readdir(dir)).filter((name) => /^streaming-\d{4}-\d{2}-\d{2}\.(json|md)$/.test(name)).sort();
  t.equal(files.length, 2, `a .json and a .md: ${files.join(", ")}`);
  const report = JSON.parse(await readFile(join(dir, files[0]!), "utf8")) as StreamingReport;
  t.equal(report.schema, "inference-guard-bench-streaming/1");
  t.same(report.problems, []);
  t.ok((report.request.eventsPerStream ?? 0) > 10, "the demo streamed its events");
  t.same(
    report.configurations.map((configuration) => configuration.id),
    ["envoy", "peer", "unbound", "shadow", "enforce"],
  );
  for (const configuration of report.configurations) {
    t.test(configuration.id, async (t) => {
      t.equal(configuration.rounds.length, 1);
      const round = configuration.rounds[0]!;
      t.equal(round.error, undefined);
      t.same(round.probe?.mismatches, [], "the probe stream showed the configuration's headers and check");
      const point = configuration.points[0]!;
      t.equal(point.concurrency, 4);
      t.ok((point.median.streams ?? 0) > 0 && point.median.failed === 0, "streams started and ended with [DONE]");
      t.ok((point.median.eventsPerSecond ?? 0) > 0 && (point.median.ttftP50Ms ?? 0) > 0, "events timed");
      if (configuration.id === "envoy") t.equal(point.median.serverCpuUsPerEvent, null, "no guard, no guard CPU");
      else t.ok((point.median.serverCpuUsPerEvent ?? -1) >= 0, "guard (or peer) CPU measured");
    });
  }
  // The contract really checked the streams: every stream of the round counted, bound or not.
  const checks = (id: string) =>
    report.configurations.find((configuration) => configuration.id === id)?.rounds[0]?.checks;
  t.ok((checks("enforce")?.passed ?? 0) > 0, "enforce: streams passed the contract");
  t.ok((checks("shadow")?.passed ?? 0) > 0, "shadow: streams passed the contract");
  t.ok((checks("unbound")?.not_applicable ?? 0) > 0, "unbound: the contract did not apply");
  t.equal(report.targets.length, 14, "targets judged for unbound, shadow and enforce");
  t.match(await readFile(join(dir, files[1]!), "utf8"), /## Summary/);
});
