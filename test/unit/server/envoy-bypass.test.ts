import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Registry } from "prom-client";
import t from "tap";
import { metricSum } from "../../../bench/metrics-text.js";
import {
  type EnvoyBypassOptions,
  extProcCounts,
  registerEnvoyBypass,
  unguardedByReason,
} from "../../../src/server/envoy-bypass.js";

const stat = (name: string, value: number) => ({ name, value });

t.test("Envoy's counters summed over every ext_proc filter and the guard cluster's overflows", async (t) => {
  const counts = extProcCounts(
    {
      stats: [
        stat("http.inference.ext_proc.failure_mode_allowed", 7),
        stat("http.inbound_0.0.0.0_8000.ext_proc.failure_mode_allowed", 3),
        stat("http.inference.ext_proc.message_timeouts", 4),
        stat("http.inference.ext_proc.streams_started", 900),
        stat("cluster.inference_guard.upstream_rq_active_overflow", 2),
        stat("cluster.inference_guard.upstream_rq_pending_overflow", 1),
        stat("cluster.model_light.upstream_rq_active_overflow", 50),
        { name: "histogram", value: "not a counter" },
      ],
    },
    "inference_guard",
  );
  t.same(counts, { failureModeAllowed: 10, messageTimeouts: 4, overflows: 3 });
  t.same(extProcCounts({}, "inference_guard"), { failureModeAllowed: 0, messageTimeouts: 0, overflows: 0 });
});

t.test("the unguarded requests split by cause; failure_mode_allow: false leaves nothing to split", async (t) => {
  t.same(unguardedByReason({ failureModeAllowed: 10, messageTimeouts: 4, overflows: 3 }), {
    message_timeout: 4,
    overflow: 3,
    stream_error: 3,
  });
  // Failures Envoy answered 500 (failure_mode_allow: false) were not unguarded.
  t.same(unguardedByReason({ failureModeAllowed: 0, messageTimeouts: 40, overflows: 30 }), {
    message_timeout: 0,
    overflow: 0,
    stream_error: 0,
  });
  t.same(unguardedByReason({ failureModeAllowed: 5, messageTimeouts: 4, overflows: 3 }), {
    message_timeout: 4,
    overflow: 1,
    stream_error: 0,
  });
});

t.test("each scrape reads Envoy's admin API; an unreachable Envoy keeps the last counts", async (t) => {
  let answer: { status: number; stats: ReturnType<typeof stat>[] } = {
    status: 200,
    stats: [
      stat("http.inference.ext_proc.failure_mode_allowed", 5),
      stat("http.inference.ext_proc.message_timeouts", 2),
    ],
  };
  const filters: string[] = [];
  const envoy = createServer((request, response) => {
    filters.push(new URL(request.url ?? "/", "http://envoy").searchParams.get("filter") ?? "");
    response
      .writeHead(answer.status, { "content-type": "application/json" })
      .end(JSON.stringify({ stats: answer.stats }));
  });
  await new Promise<void>((resolve) => envoy.listen(0, "127.0.0.1", resolve));
  t.teardown(() => envoy.close());
  const adminUrl = `http://127.0.0.1:${(envoy.address() as AddressInfo).port}`;
  let options: EnvoyBypassOptions | undefined = { adminUrl, guardCluster: "inference_guard", timeoutMs: 1_000 };
  const registry = new Registry();
  registerEnvoyBypass(registry, () => options);

  const scrape = async () => {
    const text = await registry.metrics();
    return {
      text,
      unguarded: (reason: string) => metricSum(text, "guard_envoy_unguarded_total", { reason }),
      up: metricSum(text, "guard_envoy_stats_up", { envoy: adminUrl }),
    };
  };
  let read = await scrape();
  t.equal(read.unguarded("message_timeout"), 2);
  t.equal(read.unguarded("stream_error"), 3);
  t.equal(read.unguarded("overflow"), 0);
  t.equal(read.up, 1);
  t.match(filters[0], /ext_proc/);
  t.match(filters[0], /cluster\\\.inference_guard\\\./);

  answer = { status: 503, stats: [] };
  read = await scrape();
  t.equal(read.up, 0, "a failed read is visible");
  t.equal(read.unguarded("stream_error"), 3, "and is not a counter reset");

  options = undefined;
  read = await scrape();
  t.notMatch(read.text, /guard_envoy_stats_up\{/, "no address, no series");
});
