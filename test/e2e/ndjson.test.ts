// NDJSON streamed answers (Ollama's /api/chat, application/x-ndjson) through the real Envoy and the
// guard, on the default config's `ollama` route (routes[].streaming.ndjson: { format: ollama }):
// lines arrive spread over the generation, an enforced contract cuts a violating stream before the
// violating value with an NDJSON error line (and the model stops), shadow passes every byte and
// counts the violation, the usage stage counts Ollama's eval counts and times the first token, and
// the cache stores a stream that ended with done: true and replays it as NDJSON.
import t from "tap";
import { metricSum } from "../../bench/metrics-text.js";
import { renderOutput } from "../../src/demo/outputs.js";
import type { JsonValue } from "../../src/pipeline/types.js";
import { defaultConfigWith, stackFor } from "../helpers/e2e.js";
import { type NdjsonLine, ndjsonPost, ollamaContent } from "../helpers/ndjson-client.js";
import {
  assertPaced,
  eventually,
  FIRST_TOKEN_MS,
  guardMetrics,
  PACING,
  type StreamedRecords,
  streamsCancelled,
  TRIAGE,
} from "../helpers/sse-client.js";

const BROKEN = { ...TRIAGE, "x-demo-variant": "empty_summary", "x-demo-version": "v2" };
const TRIAGE_REQUEST = {
  model: "triage-2024",
  messages: [{ role: "user", content: "my order arrived broken, I want a refund" }],
};

function contentLines(lines: readonly NdjsonLine[]): NdjsonLine[] {
  return lines.filter(({ value }) => (value.message as { content?: string } | undefined)?.content !== "");
}

t.test("Ollama NDJSON streams through Envoy and the guard", async (t) => {
  const stack = await stackFor(t);
  const url = `${stack.url}/api/chat`;

  t.test("a model the contract does not bind: lines arrive as generated, done last", async (t) => {
    const answer = await ndjsonPost(
      url,
      { model: "demo", messages: [{ role: "user", content: "tell me a long story about a lighthouse" }] },
      PACING,
    );
    t.equal(answer.status, 200);
    t.equal(answer.headers.get("content-type"), "application/x-ndjson");
    assertPaced(t, contentLines(answer.records), "unbound");
    t.ok((answer.records[0]?.at ?? Infinity) < FIRST_TOKEN_MS + 1_000, `first line after ${answer.records[0]?.at} ms`);
    t.match(answer.records.at(-1)?.value, { done: true, done_reason: "stop" });
  });

  t.test("enforce, conforming: checked line by line, forwarded as it comes, complete", async (t) => {
    const before = metricSum(await guardMetrics(stack), "guard_contract_checks_total", { result: "passed" });
    const answer = await ndjsonPost(url, TRIAGE_REQUEST, { ...TRIAGE, ...PACING });
    t.equal(answer.status, 200);
    assertPaced(t, contentLines(answer.records), "enforce, conforming");
    t.same(
      JSON.parse(ollamaContent(answer.records)),
      renderOutput("chat_structured", "v1", TRIAGE_REQUEST as JsonValue),
    );
    t.match(answer.records.at(-1)?.value, { done: true }, "the stream ends well");
    const after = metricSum(await guardMetrics(stack), "guard_contract_checks_total", { result: "passed" });
    t.equal(after - before, 1, "one passed check");
  });

  t.test("enforce, a value breaks the contract mid-stream: cut before it with an error line", async (t) => {
    const cancelledBefore = await streamsCancelled(stack);
    const answer = await ndjsonPost(url, TRIAGE_REQUEST, { ...BROKEN, ...PACING });
    t.equal(answer.status, 200, "the stream had started");
    t.notOk(answer.broken, "the cut is a clean end of the response, not a reset");
    const full = JSON.stringify(renderOutput("chat_structured", "empty_summary", TRIAGE_REQUEST as JsonValue));
    const lines = answer.records.slice(0, -1);
    const delivered = ollamaContent(lines);
    t.ok(full.startsWith(delivered), "what arrived is a prefix of the answer");
    t.ok(delivered.includes('"tags":['), `the conforming fields before it arrived: ${delivered}`);
    t.notOk(delivered.includes('"summary":""'), "the violating value never arrived");
    t.notOk(
      answer.records.some(({ value }) => value.done === true),
      "no done line: the client cannot mistake it for an answer",
    );
    const error = answer.records.at(-1)?.value.error as Record<string, unknown> | undefined;
    t.match(error, {
      type: "contract_violation",
      code: "contract.violated",
      model_version: "v2",
      violations: [{ field: "message.content<json>.summary", rule: "string.min_len" }],
    });
    t.match(String(error?.message), /violates its output contract.*summary/);
    t.ok(
      await eventually(async () => (await streamsCancelled(stack)) > cancelledBefore),
      "the upstream saw the stream reset before it finished generating",
    );
  });

  t.test("usage: Ollama's eval counts counted as tokens, the first token timed", async (t) => {
    const metrics = await guardMetrics(stack);
    const tokensBefore = metricSum(metrics, "guard_tokens_total", { route: "ollama", kind: "completion" });
    const promptBefore = metricSum(metrics, "guard_tokens_total", { route: "ollama", kind: "prompt" });
    const ttftBefore = metricSum(metrics, "guard_stream_time_to_first_token_seconds_count", { route: "ollama" });
    const answer = await ndjsonPost(
      url,
      { model: "demo", messages: [{ role: "user", content: "count the waves" }], options: { num_predict: 24 } },
      PACING,
    );
    const done = answer.records.at(-1)?.value ?? {};
    t.equal(done.done, true);
    const after = await guardMetrics(stack);
    t.equal(
      metricSum(after, "guard_tokens_total", { route: "ollama", kind: "completion" }) - tokensBefore,
      done.eval_count,
      "completion tokens: eval_count",
    );
    t.equal(
      metricSum(after, "guard_tokens_total", { route: "ollama", kind: "prompt" }) - promptBefore,
      done.prompt_eval_count,
      "prompt tokens: prompt_eval_count",
    );
    t.equal(metricSum(after, "guard_stream_time_to_first_token_seconds_count", { route: "ollama" }) - ttftBefore, 1);
    t.ok(
      metricSum(after, "guard_stream_time_to_first_token_seconds_sum", { route: "ollama" }) >= FIRST_TOKEN_MS / 1000,
      "the first token is timed after the demo's first-token delay",
    );
  });

  t.test("cache: a miss streams and is stored, the same request then replays it as NDJSON", async (t) => {
    // Deterministic in Ollama's terms (options.temperature 0); `stream` absent is Ollama's stream.
    const request = {
      model: "demo",
      messages: [{ role: "user", content: "what is a cache" }],
      options: { temperature: 0, num_predict: 16 },
    };
    const miss = await ndjsonPost(url, request, PACING);
    t.equal(miss.headers.get("x-guard-cache"), "miss");
    t.match(miss.records.at(-1)?.value, { done: true });
    const storedBytes = miss.records.map(({ text }) => `${text}\n`).join("");
    let hit: StreamedRecords<NdjsonLine> | undefined;
    t.ok(
      await eventually(async () => {
        hit = await ndjsonPost(url, request, PACING);
        return hit.headers.get("x-guard-cache") === "hit";
      }),
      "a hit once the stream was stored",
    );
    if (hit === undefined) return;
    t.equal(hit.headers.get("content-type"), "application/x-ndjson", "replayed with its content type");
    t.equal(hit.records.map(({ text }) => `${text}\n`).join(""), storedBytes, "the same lines, byte for byte");
    const unstreamed = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...request, stream: false }),
    });
    t.equal(unstreamed.headers.get("x-guard-cache"), "miss", "stream: false is keyed apart, never given the stream");
    t.match(unstreamed.headers.get("content-type"), /^application\/json/);
    t.match(await unstreamed.json(), { done: true, message: { role: "assistant" } });
  });
});

t.test("shadow: every byte passes at once, the violation is counted", async (t) => {
  const config = await defaultConfigWith({});
  const routes = config.routes as Record<string, unknown>[];
  const stack = await stackFor(t, {
    guardConfig: {
      ...config,
      routes: routes.map((route) =>
        route.name === "ollama"
          ? { ...route, contract: { ...(route.contract as Record<string, unknown>), action: "shadow" } }
          : route,
      ),
    },
  });
  const before = metricSum(await guardMetrics(stack), "guard_contract_checks_total", { result: "violated" });
  const answer = await ndjsonPost(`${stack.url}/api/chat`, TRIAGE_REQUEST, { ...BROKEN, ...PACING });
  assertPaced(t, contentLines(answer.records), "shadow");
  t.equal(
    ollamaContent(answer.records),
    JSON.stringify(renderOutput("chat_structured", "empty_summary", TRIAGE_REQUEST as JsonValue)),
    "the violating answer, unchanged",
  );
  t.match(answer.records.at(-1)?.value, { done: true });
  const after = metricSum(await guardMetrics(stack), "guard_contract_checks_total", { result: "violated" });
  t.equal(after - before, 1, "the violation is counted");
});
