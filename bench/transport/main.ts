// `make bench-transport`: the ext_proc transport alone, without Envoy. h2load plays Envoy: each
// HTTP/2 request is one ext_proc stream carrying the two messages of a pass-through exchange
// (request headers, response headers), which the server answers with two messages and an OK
// status. This isolates what a processor's gRPC stack costs per stream, so the guard can be set
// beside any other ext_proc server (--peer-cmd/--peer-addr, e.g. the Go reference in
// bench/peers/go-extproc) on the same machine, and separates that cost from Envoy's.
//
// Two loads per server, each run --runs times (medians reported):
//   serial    1 connection, 1 stream at a time: per-stream latency with no queueing;
//   pipelined 2 connections × 8 concurrent streams: throughput and CPU per stream.
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { PROJECT_ROOT } from "../../src/devstack/envoy.js";
import { freePort } from "../../src/devstack/ports.js";
import { accepts, type Managed, spawnManaged, waitUntil } from "../../src/devstack/process.js";
import { GUARD_NODE_FLAGS } from "../../src/devstack/stack.js";
import { externalProcessorService } from "../../src/extproc/proto.js";
import { frameMessage } from "../../src/server/grpc-framing.js";
import { cpuSeconds, memoryMb, processTree } from "../pipeline/procfs.js";
import { median } from "../pipeline/stats.js";

const PROCESS_PATH = "/envoy.service.ext_proc.v3.ExternalProcessor/Process";
interface Load {
  readonly connections: number;
  /** Concurrent streams per connection (h2load -m). */
  readonly streams: number;
  readonly requests: number;
}

const FULL: Readonly<Record<"serial" | "pipelined" | "warmup", Load>> = {
  serial: { connections: 1, streams: 1, requests: 10_000 },
  pipelined: { connections: 2, streams: 8, requests: 30_000 },
  warmup: { connections: 2, streams: 8, requests: 5_000 },
};
/** What make test runs: the harness works end to end, the numbers mean nothing. */
const QUICK: typeof FULL = {
  serial: { connections: 1, streams: 1, requests: 100 },
  pipelined: { connections: 2, streams: 8, requests: 400 },
  warmup: { connections: 1, streams: 1, requests: 10 },
};

interface Measurement {
  readonly streamsPerSecond: number;
  readonly meanMs: number;
  readonly minMs: number;
  readonly cpuUsPerStream: number;
  /** Streams h2load did not see complete with HTTP 200; gRPC statuses in trailers are not read. */
  readonly failed: number;
}

interface ServerReport {
  readonly name: string;
  readonly command: string;
  readonly serial: Measurement;
  readonly pipelined: Measurement;
  readonly rssMb: number;
}

/** One pass-through exchange, framed as Envoy would send it on the stream. */
function exchangeBody(): Buffer {
  const encode = externalProcessorService().Process?.requestSerialize;
  if (encode === undefined) throw new Error("no Process method");
  const headerMap = (entries: Record<string, string>): { headers: { key: string; rawValue: Buffer }[] } => ({
    headers: Object.entries(entries).map(([key, value]) => ({ key, rawValue: Buffer.from(value) })),
  });
  const requestHeaders = {
    requestHeaders: {
      headers: headerMap({
        ":method": "POST",
        ":path": "/v1/chat/completions",
        ":authority": "bench",
        "content-type": "application/json",
        "x-request-id": "bench",
      }),
      endOfStream: false,
    },
  };
  const responseHeaders = {
    responseHeaders: {
      headers: headerMap({ ":status": "200", "content-type": "application/json" }),
      endOfStream: false,
    },
  };
  return Buffer.concat([frameMessage(encode(requestHeaders)), frameMessage(encode(responseHeaders))]);
}

/** h2load's "time for request: min max mean sd" line, in ms. */
function parseTimes(output: string): { minMs: number; meanMs: number } {
  const line = output.split("\n").find((text) => text.trimStart().startsWith("time for request:"));
  const toMs = (value: string): number =>
    value.endsWith("us")
      ? Number.parseFloat(value) / 1000
      : value.endsWith("ms")
        ? Number.parseFloat(value)
        : Number.parseFloat(value) * 1000;
  const fields = line?.split(":")[1]?.trim().split(/\s+/) ?? [];
  return { minMs: toMs(fields[0] ?? "NaN"), meanMs: toMs(fields[2] ?? "NaN") };
}

function runLoad(address: string, bodyFile: string, load: Load, pids: readonly number[]): Measurement {
  const before = cpuSeconds(pids);
  const output = execFileSync(
    "h2load",
    [
      "-n",
      String(load.requests),
      "-c",
      String(load.connections),
      "-m",
      String(load.streams),
      "-H",
      "content-type: application/grpc",
      "-H",
      "te: trailers",
      "-d",
      bodyFile,
      `http://${address}${PROCESS_PATH}`,
    ],
    { encoding: "utf8" },
  );
  const cpu = cpuSeconds(pids) - before;
  const rate = /finished in [^,]+, ([\d.]+) req\/s/.exec(output)?.[1];
  const succeeded = Number(/requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded/.exec(output)?.[1] ?? 0);
  return {
    streamsPerSecond: Number(rate ?? 0),
    ...parseTimes(output),
    cpuUsPerStream: (cpu * 1e6) / load.requests,
    failed: load.requests - succeeded,
  };
}

function medianOf(runs: readonly Measurement[]): Measurement {
  const pick = (field: keyof Measurement): number => median(runs.map((run) => run[field]));
  return {
    streamsPerSecond: pick("streamsPerSecond"),
    meanMs: pick("meanMs"),
    minMs: pick("minMs"),
    cpuUsPerStream: pick("cpuUsPerStream"),
    failed: Math.max(...runs.map((run) => run.failed)),
  };
}

async function measure(
  name: string,
  command: string,
  server: Managed,
  address: string,
  bodyFile: string,
  runs: number,
  loads: typeof FULL,
): Promise<ServerReport> {
  await waitUntil(`${name} at ${address}`, () => accepts(address), 20_000, server);
  const pid = server.child.pid;
  if (pid === undefined) throw new Error(`${name} did not start`);
  const pids = processTree(pid);
  runLoad(address, bodyFile, loads.warmup, pids); // JIT, HTTP/2 windows
  const serial: Measurement[] = [];
  const pipelined: Measurement[] = [];
  for (let run = 0; run < runs; run++) {
    serial.push(runLoad(address, bodyFile, loads.serial, pids));
    pipelined.push(runLoad(address, bodyFile, loads.pipelined, pids));
  }
  return { name, command, serial: medianOf(serial), pipelined: medianOf(pipelined), rssMb: memoryMb(pids, "VmRSS") };
}

function row(report: ServerReport): string {
  const { serial, pipelined } = report;
  return `| ${report.name} | ${serial.meanMs.toFixed(3)} | ${serial.minMs.toFixed(3)} | ${pipelined.streamsPerSecond.toFixed(0)} | ${pipelined.cpuUsPerStream.toFixed(0)} | ${report.rssMb.toFixed(0)} | ${serial.failed + pipelined.failed} |`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      runs: { type: "string", default: "3" },
      "peer-cmd": { type: "string" },
      "peer-addr": { type: "string" },
      "peer-name": { type: "string", default: "peer" },
      out: { type: "string", default: join(PROJECT_ROOT, "bench", "results") },
    },
  });
  const loads = values.quick ? QUICK : FULL;
  const runs = values.quick ? 1 : Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error("--runs must be a positive integer");
  if ((values["peer-cmd"] === undefined) !== (values["peer-addr"] === undefined))
    throw new Error("--peer-cmd and --peer-addr go together");
  const workDir = await mkdtemp(join(tmpdir(), "inference-guard-transport-"));
  const bodyFile = join(workDir, "exchange.bin");
  await writeFile(bodyFile, exchangeBody());
  const reports: ServerReport[] = [];
  const load = loadavg();
  try {
    const address = `127.0.0.1:${await freePort()}`;
    const configFile = join(workDir, "guard.yaml");
    await writeFile(
      configFile,
      stringify({
        listen: { grpc: address, admin: `127.0.0.1:${await freePort()}` },
        routes: [{ name: "chat", match: { pathPrefix: "/v1/chat/completions" } }],
      }),
    );
    const guardArgs = [
      ...GUARD_NODE_FLAGS,
      join(PROJECT_ROOT, "bin", "inference-guard.js"),
      "serve",
      "--config",
      configFile,
    ];
    const guard = spawnManaged("guard", process.execPath, guardArgs);
    try {
      reports.push(
        await measure(
          "inference-guard (pass-through route)",
          `node ${guardArgs.join(" ")}`,
          guard,
          address,
          bodyFile,
          runs,
          loads,
        ),
      );
    } finally {
      await guard.stop();
    }
    if (values["peer-cmd"] !== undefined && values["peer-addr"] !== undefined) {
      const peer = spawnManaged("peer", "/bin/sh", ["-c", `exec ${values["peer-cmd"]}`]);
      try {
        reports.push(
          await measure(values["peer-name"], values["peer-cmd"], peer, values["peer-addr"], bodyFile, runs, loads),
        );
      } finally {
        await peer.stop();
      }
    }
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  const date = new Date().toISOString().slice(0, 10);
  const table = [
    "| server | serial mean ms/stream | serial min ms | pipelined streams/s | CPU µs/stream | RSS MB | failed |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...reports.map(row),
  ].join("\n");
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? "CPU"}, load average at start ${load.map((value) => value.toFixed(2)).join(" ")}`;
  process.stdout.write(`ext_proc transport, medians of ${runs} run(s); ${machine}\n\n${table}\n`);
  await mkdir(resolve(values.out), { recursive: true });
  const file = join(resolve(values.out), `transport-${date}.json`);
  await writeFile(file, `${JSON.stringify({ date, runs, machine, loads, servers: reports }, null, 2)}\n`);
  process.stdout.write(`\nwrote ${file}\n`);
  if (reports.some((report) => report.serial.failed + report.pipelined.failed > 0)) process.exitCode = 1;
}

await main();
