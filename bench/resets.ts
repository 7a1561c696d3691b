// Cancellations as Envoy sends them without ext_proc_graceful_grpc_close: every ext_proc stream ends
// in a reset, and clients cancel streamed answers mid-response. Offered open-loop at --rate
// requests/s for --seconds; the guard must never answer Envoy's resets with GOAWAY (its HTTP/2 reset
// budget, limits.streamResetBurst/Rate) and no exchange may fail. Run:
//   node dist/bench/resets.js --rate 200 --seconds 120 --out bench/results/resets-DATE.json
import { mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { startStack } from "../src/devstack/stack.js";
import { envoyStats, resettingEveryStream } from "../test/helpers/e2e.js";
import { cancelAfterFirstBytes } from "../test/helpers/load.js";

const { values } = parseArgs({
  options: {
    rate: { type: "string", default: "200" },
    seconds: { type: "string", default: "120" },
    out: { type: "string" },
  },
});
const rate = Number(values.rate);
const seconds = Number(values.seconds);

const stack = await startStack({
  guardConfig: { routes: [{ name: "chat", match: { pathPrefix: "/v1/chat/completions" } }] },
  demoArgs: { light: ["--first-token-ms", "20", "--inter-token-ms", "20"] },
  editEnvoyConfig: resettingEveryStream,
});
const outcomes = new Map<string, number>();
const count = (outcome: string): void => {
  outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
};

const started = performance.now();
const inFlight: Promise<void>[] = [];
for (let index = 0; performance.now() - started < seconds * 1000; index++) {
  inFlight.push(cancelAfterFirstBytes(stack.url, `cancel ${index}`).then(count));
  const due = started + ((index + 1) * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 0) await sleep(wait);
}
await Promise.all(inFlight);
const elapsedS = (performance.now() - started) / 1000;
const stats = await envoyStats(stack.envoy.adminUrl, "^(cluster\\.inference_guard\\.|http\\.inference\\.ext_proc\\.)");
const metrics = (await stack.guard?.metrics()) ?? "";
await stack.stop();

const report = {
  rate,
  seconds: Math.round(elapsedS),
  requests: inFlight.length,
  outcomes: Object.fromEntries(outcomes),
  envoy: {
    goawaysFromGuard: stats.get("cluster.inference_guard.upstream_cx_close_notify") ?? 0,
    extProcStreamsFailed: stats.get("http.inference.ext_proc.streams_failed") ?? 0,
    extProcStreamsReset: stats.get("cluster.inference_guard.upstream_rq_tx_reset") ?? 0,
    guardConnections: stats.get("cluster.inference_guard.upstream_cx_total") ?? 0,
  },
  guardRefusals: metrics.split("\n").filter((line) => line.startsWith("guard_grpc_refusals_total{")),
};
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
if (values.out !== undefined) {
  await mkdir(dirname(values.out), { recursive: true });
  await writeFile(values.out, `${JSON.stringify(report, null, 2)}\n`);
}
