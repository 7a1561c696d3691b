// The usage stage through a real Envoy 1.40 and the demo model's paced streams: tokens from the
// usage chunk, time to first token and per output token as the client sees them, and how streams end.
import t from "tap";
import { metricSum } from "../../bench/metrics-text.js";
import { waitUntil } from "../../src/devstack/process.js";
import { post, stackFor } from "../helpers/e2e.js";

const FIRST_TOKEN_MS = 300;
const INTER_TOKEN_MS = 20;

function completion(tag: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: "demo", prompt: `usage e2e: ${tag}`, max_tokens: 40, stream: true, ...extra };
}

const PACED = {
  "x-demo-first-token-ms": String(FIRST_TOKEN_MS),
  "x-demo-inter-token-ms": String(INTER_TOKEN_MS),
};

t.test("streamed completions through Envoy", async (t) => {
  const stack = await stackFor(t);
  const url = `${stack.url}/v1/completions`;
  const metrics = async () => (await stack.guard?.metrics()) ?? "";
  const route = { route: "completions" };

  const answer = await post(url, completion("usage", { stream_options: { include_usage: true } }), PACED);
  t.equal(answer.status, 200);
  const events = answer.text.split("\n\n").filter((event) => event.startsWith("data: {"));
  const last = JSON.parse((events.at(-1) ?? "").slice("data: ".length)) as {
    usage: { prompt_tokens: number; completion_tokens: number };
  };
  let text = await metrics();
  t.equal(metricSum(text, "guard_tokens_total", { ...route, kind: "prompt" }), last.usage.prompt_tokens);
  t.equal(metricSum(text, "guard_tokens_total", { ...route, kind: "completion" }), last.usage.completion_tokens);
  t.equal(metricSum(text, "guard_streams_total", { ...route, outcome: "completed" }), 1);
  const ttft = metricSum(text, "guard_stream_time_to_first_token_seconds_sum", route);
  t.ok(ttft >= FIRST_TOKEN_MS / 1000 && ttft < 5, `time to first token ${ttft} s, paced at ${FIRST_TOKEN_MS} ms`);
  t.equal(metricSum(text, "guard_stream_time_per_output_token_seconds_count", route), 1);
  // The demo sends a few tokens per event, an event every INTER_TOKEN_MS: per token, the span of the
  // output events over the reported completion tokens.
  const outputEvents = events.filter((event) => /"text":"[^"]/.test(event)).length;
  const expected = ((outputEvents - 1) * INTER_TOKEN_MS) / 1000 / (last.usage.completion_tokens - 1);
  const perToken = metricSum(text, "guard_stream_time_per_output_token_seconds_sum", route);
  t.ok(
    perToken > expected * 0.5 && perToken < expected * 2,
    `time per output token ${perToken.toFixed(4)} s, paced ${expected.toFixed(4)} s (${outputEvents} events, ${last.usage.completion_tokens} tokens)`,
  );

  const bare = await post(url, completion("no usage"), PACED);
  t.equal(bare.status, 200);
  text = await metrics();
  t.equal(metricSum(text, "guard_stream_usage_missing_total", route), 1, "no include_usage: counted as missing");
  t.equal(metricSum(text, "guard_streams_total", { ...route, outcome: "completed" }), 2);

  // A client that leaves before the first token: Envoy resets the ext_proc stream.
  const controller = new AbortController();
  const leaving = fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", "x-demo-first-token-ms": "2000" },
    body: JSON.stringify(completion("cancelled")),
    signal: controller.signal,
  });
  const response = await leaving;
  t.equal(response.status, 200, "headers came first");
  controller.abort();
  await waitUntil(
    "the cancelled stream is counted",
    async () => metricSum(await metrics(), "guard_streams_total", { ...route, outcome: "cancelled" }) === 1,
    10_000,
  );
  t.pass("cancelled");
});
