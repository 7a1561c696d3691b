// The drain: readiness fails at once, new streams are still served through the grace, then refused,
// and the open ones get what is left of the timeout. The state machine on virtual time, then the
// running guard on short real durations, then the command's signals.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { pino } from "pino";
import t, { type Test } from "tap";
import { prepareText } from "../../../src/config/prepare.js";
import { externalProcessorService } from "../../../src/extproc/proto.js";
import type { ProcessingRequest, ProcessingResponse } from "../../../src/extproc/wire.js";
import { ComponentLogs } from "../../../src/log.js";
import { Drain, type DrainPlan, type DrainSteps } from "../../../src/server/drain.js";
import { EXT_PROC_SERVICE } from "../../../src/server/grpc.js";
import { HEALTH_PROTO } from "../../../src/server/health.js";
import { type RunningGuard, startGuard } from "../../../src/server/serve.js";
import { requestHeaders } from "../../helpers/frames.js";
import { VirtualTime } from "../../helpers/virtual-time.js";

const BIN = fileURLToPath(new URL("../../../../bin/inference-guard.js", import.meta.url));

/** A drain on virtual time whose steps record what they were asked; finish() ends the closing. */
function virtualDrain(plan: DrainPlan): {
  drain: Drain;
  time: VirtualTime;
  events: string[];
  finish: (forced: boolean) => void;
} {
  const time = new VirtualTime();
  const events: string[] = [];
  let finish: (forced: boolean) => void = () => undefined;
  const steps: DrainSteps = {
    notReady: () => events.push("notReady"),
    stopAccepting: (remainingMs) => {
      events.push(`stopAccepting ${remainingMs}`);
      return new Promise((resolve) => {
        finish = (forced) => resolve({ forced });
      });
    },
  };
  const drain = new Drain(plan, steps, { now: time.now, ...time.timers });
  return { drain, time, events, finish: (forced) => finish(forced) };
}

const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

t.test("readiness fails at once; new streams are refused only when the grace is over", async (t) => {
  const { drain, time, events, finish } = virtualDrain({ graceMs: 5_000, timeoutMs: 10_000 });
  t.equal(drain.phase, "serving");
  const done = drain.request();
  t.same(events, ["notReady"], "not ready synchronously, before any timer");
  t.equal(drain.phase, "grace");
  time.advance(4_999);
  await settled();
  t.same(events, ["notReady"], "still taking streams 1 ms before the grace ends");
  time.advance(1);
  await settled();
  t.same(events, ["notReady", "stopAccepting 5000"], "the open streams get the rest of the timeout");
  t.equal(drain.phase, "closing");
  finish(false);
  t.same(await done, { forced: false, graceCut: false });
});

t.test("a second request ends the grace at once; the deadline still counts from the first", async (t) => {
  const { drain, time, events, finish } = virtualDrain({ graceMs: 5_000, timeoutMs: 10_000 });
  const first = drain.request();
  time.advance(1_500);
  const second = drain.request();
  await settled();
  t.same(events, ["notReady", "stopAccepting 8500"], "readiness is not flipped twice");
  t.equal(time.pendingTimers, 0, "the grace timer is gone");
  finish(true);
  t.same(await first, { forced: true, graceCut: true });
  t.equal(second, first, "both callers wait for the same drain");
});

t.test("a request after the grace changes nothing", async (t) => {
  const { drain, time, events, finish } = virtualDrain({ graceMs: 1_000, timeoutMs: 3_000 });
  const first = drain.request();
  time.advance(1_000);
  await settled();
  const again = drain.request();
  finish(false);
  t.equal(again, first);
  t.same(await again, { forced: false, graceCut: false });
  t.same(events, ["notReady", "stopAccepting 2000"]);
});

type Duplex = grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>;

/** One ext_proc client per call: a new connection, as Envoy opens when it has none. */
function processClient(t: Test, address: string): { open(): Duplex } {
  const Client = grpc.makeGenericClientConstructor(externalProcessorService(), "ExternalProcessor");
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as {
    Process(): Duplex;
    close(): void;
  };
  t.teardown(() => client.close());
  return { open: () => client.Process() };
}

/** Request headers in, the guard's answer back, and the stream's gRPC status once it ends. */
async function exchange(
  t: Test,
  address: string,
  end = true,
): Promise<{ answered: boolean; status: Promise<number>; end(): void }> {
  const call = processClient(t, address).open();
  const status = new Promise<number>((resolve) => call.on("status", (status) => resolve(status.code)));
  call.on("error", () => undefined);
  const answered = new Promise<boolean>((resolve) => {
    call.once("data", () => resolve(true));
    void status.then(() => resolve(false));
  });
  call.write(requestHeaders({ ":path": "/v1/chat/completions" }));
  if (end) call.end();
  return { answered: await answered, status, end: () => call.end() };
}

function healthOf(t: Test, address: string): Promise<string> {
  const definition = protoLoader.loadSync(HEALTH_PROTO, { enums: String });
  const Health = grpc.makeGenericClientConstructor(
    definition["grpc.health.v1.Health"] as grpc.ServiceDefinition,
    "Health",
  );
  const client = new Health(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    check(request: object, callback: (error: grpc.ServiceError | null, response: { status: string }) => void): void;
  };
  t.teardown(() => client.close());
  return new Promise((resolve) =>
    client.check({ service: EXT_PROC_SERVICE }, (error, response) =>
      resolve(error === null ? response.status : `error ${error.code}`),
    ),
  );
}

async function guardWith(drain: string): Promise<RunningGuard> {
  const prepared = await prepareText(
    `listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }\ndrain: ${drain}\nroutes: [{ name: chat, match: { pathPrefix: /v1/chat } }]\n`,
  );
  if (!prepared.ok) throw new Error(JSON.stringify(prepared.errors));
  return startGuard(prepared, new ComponentLogs(pino({ level: "silent" })));
}

t.test("a running guard in its grace: not ready anywhere, yet new connections and streams are served", async (t) => {
  const guard = await guardWith("{ graceMs: 600, timeoutMs: 5000 }");
  t.equal(await healthOf(t, guard.grpcAddress), "SERVING");
  const drained = guard.drain();
  t.equal((await fetch(`${guard.adminUrl}/readyz`)).status, 503, "/readyz fails at once");
  t.equal(await healthOf(t, guard.grpcAddress), "NOT_SERVING", "gRPC health fails at once");
  const inGrace = await exchange(t, guard.grpcAddress);
  t.ok(inGrace.answered, "a stream on a new connection during the grace is answered");
  t.equal(await inGrace.status, grpc.status.OK);
  // Held open across the end of the grace: the drain must wait for it.
  const held = await exchange(t, guard.grpcAddress, false);
  t.ok(held.answered);
  await new Promise((resolve) => setTimeout(resolve, 800));
  const late = await exchange(t, guard.grpcAddress);
  t.notOk(late.answered, "after the grace a new stream is refused");
  t.equal(await late.status, grpc.status.UNAVAILABLE);
  held.end();
  t.equal(await held.status, grpc.status.OK, "the stream taken during the grace finishes normally");
  t.same(await drained, { forced: false, graceCut: false });
});

t.test("a second drain call ends a long grace at once", async (t) => {
  const guard = await guardWith("{ graceMs: 60000, timeoutMs: 120000 }");
  const first = guard.drain();
  const startedAt = performance.now();
  const second = guard.drain();
  t.same(await second, { forced: false, graceCut: true });
  t.equal(await first, await second);
  t.ok(performance.now() - startedAt < 5_000, "nowhere near the 60 s grace");
});

t.test("serve: SIGTERM starts the grace, a second SIGTERM ends it, exit 0", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "guard-drain-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const config = join(dir, "guard.yaml");
  await writeFile(
    config,
    'listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }\ndrain: { graceMs: 60000, timeoutMs: 120000 }\n',
  );
  const child = spawn(process.execPath, [BIN, "serve", "--config", config], { stdio: ["ignore", "pipe", "pipe"] });
  t.teardown(() => child.kill("SIGKILL"));
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  const logged = async (message: string): Promise<Record<string, unknown>> => {
    for (;;) {
      const line = output.split("\n").find((text) => text.includes(`"msg":"${message}"`));
      if (line !== undefined) return JSON.parse(line) as Record<string, unknown>;
      if (child.exitCode !== null) throw new Error(`exited before "${message}":\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const ready = await logged("inference-guard ready");
  child.kill("SIGTERM");
  t.match(await logged("draining: not ready, still serving new streams"), { graceMs: 60_000, timeoutMs: 120_000 });
  t.equal((await fetch(`${String(ready.admin)}/readyz`)).status, 503);
  t.equal(child.exitCode, null, "still running in the grace");
  child.kill("SIGTERM");
  const [code, signal] = await exited;
  t.same([code, signal], [0, null], "a second signal ends the grace; the guard exits 0, not killed by it");
  t.match(await logged("drained"), { forced: false, graceCut: true });
});
