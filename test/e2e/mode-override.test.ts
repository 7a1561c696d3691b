// An Envoy that drops the guard's mode_override (allow_mode_override: false) sends it the request
// headers only: every exchange passes unchecked, an enforced contract included. The guard cannot
// fix that, but it must say so: the gauge, the warning and the alert (docs/contracts.md).
import t from "tap";
import { metricSum } from "../../bench/metrics-text.js";
import { IGNORED_AFTER_MISSES } from "../../src/extproc/override-watch.js";
import { stackFor } from "../helpers/e2e.js";
import { eventually, guardMetrics, PACING, streamPost, TRIAGE } from "../helpers/sse-client.js";

const BROKEN = { ...TRIAGE, "x-demo-variant": "empty_summary", "x-demo-version": "v2" };

t.test("an Envoy that ignores mode_override is noticed and named", async (t) => {
  const stack = await stackFor(t, {
    editEnvoyConfig: (yaml) => yaml.replace("allow_mode_override: true", "allow_mode_override: false"),
  });
  const chat = `${stack.url}/v1/chat/completions`;
  const request = { model: "triage-2024", messages: [{ role: "user", content: "my order arrived broken" }] };

  const streamed = await streamPost(chat, request, { ...BROKEN, ...PACING });
  t.equal(streamed.status, 200);
  t.equal(streamed.events.at(-1)?.data, "[DONE]", "the violating stream went through unchecked: the hole this names");
  t.equal(
    metricSum(await guardMetrics(stack), "guard_extproc_mode_override_ignored"),
    0,
    "one quick close could be a client that left",
  );

  for (let more = 1; more < IGNORED_AFTER_MISSES; more++) {
    const plain = await fetch(chat, {
      method: "POST",
      headers: { "content-type": "application/json", ...BROKEN },
      body: JSON.stringify(request),
    });
    t.equal(plain.status, 200, "unchecked: the violating answer is not replaced");
    await plain.arrayBuffer();
  }
  t.ok(
    await eventually(
      async () => metricSum(await guardMetrics(stack), "guard_extproc_mode_override_ignored") === 1,
      3_000,
    ),
    "the gauge says so",
  );
  const metrics = await guardMetrics(stack);
  t.ok(
    metricSum(metrics, "guard_extproc_anomalies_total", { kind: "asked_frame_missing" }) >= IGNORED_AFTER_MISSES,
    "each quick close counted",
  );
  t.equal(metricSum(metrics, "guard_contract_checks_total"), 0, "no contract was checked");
  const warnings = (stack.guard?.process().output() ?? "")
    .split("\n")
    .filter((line) => line.includes("ignores the guard's mode_override"));
  t.equal(warnings.length, 1, "one warning");
  t.match(warnings[0], /allow_mode_override: true/, "that says what to set");
});
