// Streamed answers (text/event-stream) through the real Envoy and the guard, from a demo model that
// paces its events like an LLM server: tokens arrive spread over the generation, an enforced
// contract cuts a violating stream before the violating value (and the model stops), shadow and
// unbound models pass every byte at once, a client that leaves mid-stream returns its admission
// budget, and the official OpenAI SDK streams through it all.
import OpenAI from "openai";
import t from "tap";
import { metricSum } from "../../bench/metrics-text.js";
import { renderOutput } from "../../src/demo/outputs.js";
import type { JsonValue } from "../../src/pipeline/types.js";
import { defaultConfigWith, stackFor, upstreamServed } from "../helpers/e2e.js";
import { pythonSdk } from "../helpers/openai-python.js";
import {
  assertPaced,
  eventually,
  FIRST_TOKEN_MS,
  guardMetrics,
  PACING,
  type StreamEvent,
  sentBody,
  streamPost,
  streamsCancelled,
  TRIAGE,
} from "../helpers/sse-client.js";

const CONTENT_PATH = "choices[0].message.content<json>";

/** The text a chat stream's content deltas add up to. */
function contentOf(events: readonly StreamEvent[]): string {
  let content = "";
  for (const { data, event } of events) {
    if (event !== undefined || data === "[DONE]") continue;
    const parsed = JSON.parse(data) as { choices?: { delta?: { content?: string } }[] };
    content += parsed.choices?.[0]?.delta?.content ?? "";
  }
  return content;
}

function contentEvents(events: readonly StreamEvent[]): StreamEvent[] {
  return events.filter(({ data, event }) => event === undefined && data !== "[DONE]" && data.includes('"content":"'));
}

t.test("streams through Envoy and the guard", async (t) => {
  const stack = await stackFor(t);
  const chat = `${stack.url}/v1/chat/completions`;
  const triageRequest = {
    model: "triage-2024",
    messages: [{ role: "user", content: "my order arrived broken, I want a refund" }],
    stream_options: { include_usage: true },
  };

  t.test("a model the contract does not bind is never held: tokens arrive as generated", async (t) => {
    const answer = await streamPost(
      chat,
      { model: "demo", messages: [{ role: "user", content: "tell me a long story about a lighthouse" }] },
      PACING,
    );
    t.equal(answer.status, 200);
    t.match(answer.headers.get("content-type"), /text\/event-stream/);
    assertPaced(t, contentEvents(answer.events), "unbound");
    t.ok((answer.events[0]?.at ?? Infinity) < FIRST_TOKEN_MS + 1_000, `first event after ${answer.events[0]?.at} ms`);
    t.equal(answer.events.at(-1)?.data, "[DONE]");
  });

  t.test("enforce, conforming: checked event by event, forwarded as it comes, complete", async (t) => {
    const before = metricSum(await guardMetrics(stack), "guard_contract_checks_total", { result: "passed" });
    const answer = await streamPost(chat, triageRequest, { ...TRIAGE, ...PACING });
    t.equal(answer.status, 200);
    assertPaced(t, contentEvents(answer.events), "enforce, conforming");
    t.same(
      JSON.parse(contentOf(answer.events)),
      renderOutput("chat_structured", "v1", sentBody(triageRequest) as JsonValue),
    );
    t.equal(answer.events.at(-1)?.data, "[DONE]", "the stream ends well");
    const usage = answer.events.find(({ data }) => data.includes('"usage":{'));
    t.ok(usage !== undefined, "the usage chunk reaches the client");
    const after = metricSum(await guardMetrics(stack), "guard_contract_checks_total", { result: "passed" });
    t.equal(after - before, 1, "one passed check");
  });

  t.test("enforce, a value breaks the contract mid-stream: cut before it, the model stops", async (t) => {
    const cancelledBefore = await streamsCancelled(stack);
    const answer = await streamPost(chat, triageRequest, {
      ...TRIAGE,
      ...PACING,
      "x-demo-variant": "empty_summary",
      "x-demo-version": "v2",
    });
    t.equal(answer.status, 200, "the stream had started");
    t.notOk(answer.broken, "the cut is a clean end of the response, not a reset");
    const full = JSON.stringify(renderOutput("chat_structured", "empty_summary", sentBody(triageRequest) as JsonValue));
    const delivered = contentOf(answer.events);
    t.ok(full.startsWith(delivered), "what arrived is a prefix of the answer");
    t.ok(delivered.includes('"tags":['), `the conforming fields before it arrived: ${delivered}`);
    t.notOk(delivered.includes('"summary":""'), "the violating value never arrived");
    const last = answer.events.at(-1);
    t.equal(last?.event, "error", "the stream ends with an error event");
    t.notOk(
      answer.events.some(({ data }) => data === "[DONE]"),
      "no [DONE]: the client cannot mistake it for an answer",
    );
    const error = (JSON.parse(last?.data ?? "{}") as { error: Record<string, unknown> }).error;
    t.match(error, {
      type: "contract_violation",
      code: "contract.violated",
      model_version: "v2",
      violations: [{ field: `${CONTENT_PATH}.summary`, rule: "string.min_len" }],
    });
    t.match(String(error.message), /summary/, "the message names the field");
    t.ok(
      await eventually(async () => (await streamsCancelled(stack)) > cancelledBefore),
      "the upstream saw the stream reset before it finished generating",
    );
  });

  t.test("a client that leaves mid-stream returns its admission budget at once", async (t) => {
    const slow = { "x-demo-first-token-ms": "50", "x-demo-inter-token-ms": "200" };
    const answer = await streamPost(
      chat,
      { model: "demo", messages: [{ role: "user", content: "a story with many, many words in it please" }] },
      slow,
      3,
    );
    t.ok(answer.events.length >= 3);
    t.ok(
      await eventually(async () => metricSum(await guardMetrics(stack), "guard_admission_inflight_cost") === 0, 3_000),
      "no cost in flight after the client left",
    );
  });

  t.test("the OpenAI SDK streams through the guard, and names the violation when cut", async (t) => {
    const client = new OpenAI({ apiKey: "not-checked", baseURL: `${stack.url}/v1`, maxRetries: 0 });
    const chunks = await client.chat.completions.create(
      {
        model: "triage-2024",
        messages: triageRequest.messages as OpenAI.ChatCompletionMessageParam[],
        stream: true,
        stream_options: { include_usage: true },
      },
      { headers: TRIAGE },
    );
    let text = "";
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of chunks) {
      text += chunk.choices[0]?.delta?.content ?? "";
      usage = chunk.usage ?? usage;
    }
    // The demo derives its answer from the body's bytes, whose key order is the SDK's: compare shapes.
    t.same(
      Object.keys(JSON.parse(text) as object),
      Object.keys(renderOutput("chat_structured", "v1", triageRequest) as object),
      "text assembled right",
    );
    t.ok((usage?.completion_tokens ?? 0) > 0, "usage present");

    const broken = await client.chat.completions.create(
      { model: "triage-2024", messages: triageRequest.messages as OpenAI.ChatCompletionMessageParam[], stream: true },
      { headers: { ...TRIAGE, "x-demo-variant": "empty_summary", "x-demo-version": "v2" } },
    );
    const caught = await (async () => {
      try {
        for await (const _chunk of broken);
        return undefined;
      } catch (error) {
        return error;
      }
    })();
    if (!(caught instanceof OpenAI.APIError)) return t.fail(`expected an APIError, got ${String(caught)}`);
    t.equal(caught.code, "contract.violated");
    t.equal(caught.type, "contract_violation");
    t.match(caught.message, /violates its output contract.*summary/);
  });
  t.test(
    "the OpenAI Python SDK: text and usage, the violation named, and no retry of a deterministic break",
    async (t) => {
      const request = {
        model: "triage-2024",
        messages: triageRequest.messages,
        stream: true,
        stream_options: { include_usage: true },
      };
      const ok = pythonSdk(t, `${stack.url}/v1`, request, TRIAGE);
      t.same(
        Object.keys(JSON.parse(ok.text ?? "{}") as object),
        Object.keys(renderOutput("chat_structured", "v1", {}) as object),
      );
      t.ok((ok.usage?.completion_tokens ?? 0) > 0, "usage present");

      const breaking = { ...TRIAGE, "x-demo-variant": "empty_summary", "x-demo-version": "v2" };
      const cut = pythonSdk(t, `${stack.url}/v1`, request, breaking);
      t.match(cut.error, { class: "APIError", code: "contract.violated", type: "contract_violation" });
      t.match(cut.error?.message, /violates its output contract.*summary/);

      const served = await upstreamServed(stack.light.url);
      const rejected = pythonSdk(t, `${stack.url}/v1`, { model: request.model, messages: request.messages }, breaking);
      t.match(rejected.error, { class: "InternalServerError", status: 502, code: "contract.violated" });
      t.match(
        rejected.error?.message,
        /violates its output contract/,
        "the SDK shows the guard's message, not a bare status",
      );
      t.equal(
        await upstreamServed(stack.light.url),
        served + 1,
        "x-should-retry: false: the model generated it once, not three times",
      );
    },
  );
});

t.test("shadow and stream: buffer", async (t) => {
  const config = await defaultConfigWith({});
  const routes = config.routes as Record<string, unknown>[];
  const chatRoute = routes.find((route) => route.name === "chat") as Record<string, unknown>;
  const contract = chatRoute.contract as Record<string, unknown>;
  const stack = await stackFor(t, {
    guardConfig: {
      ...config,
      routes: [
        // Ahead of chat (and covered by it, hence first): the same binding, enforced on the whole stream.
        {
          ...chatRoute,
          name: "chat-buffered",
          match: { pathPrefix: "/v1/chat/completions", headers: { "x-buffer": "1" } },
          contract: { ...contract, action: "enforce", stream: "buffer" },
        },
        ...routes.map((route) =>
          route === chatRoute ? { ...route, contract: { ...contract, action: "shadow" } } : route,
        ),
      ],
    },
  });
  const chat = `${stack.url}/v1/chat/completions`;
  const request = { model: "triage-2024", messages: [{ role: "user", content: "where is my parcel" }] };
  const broken = { ...TRIAGE, "x-demo-variant": "empty_summary", "x-demo-version": "v2" };

  t.test("shadow passes every byte at once and counts the violation", async (t) => {
    const before = metricSum(await guardMetrics(stack), "guard_contract_checks_total", { result: "violated" });
    const answer = await streamPost(chat, request, { ...broken, ...PACING });
    assertPaced(t, contentEvents(answer.events), "shadow");
    t.equal(
      contentOf(answer.events),
      JSON.stringify(renderOutput("chat_structured", "empty_summary", sentBody(request) as JsonValue)),
    );
    t.equal(answer.events.at(-1)?.data, "[DONE]");
    const after = metricSum(await guardMetrics(stack), "guard_contract_checks_total", { result: "violated" });
    t.equal(after - before, 1, "the violation is counted");
  });

  t.test("stream: buffer answers a violating stream with the guard's 502 before any byte", async (t) => {
    const response = await fetch(chat, {
      method: "POST",
      headers: { "content-type": "application/json", "x-buffer": "1", ...broken },
      body: JSON.stringify({ ...request, stream: true }),
    });
    t.equal(response.status, 502);
    t.equal(response.headers.get("x-should-retry"), "false", "SDKs do not ask again for a deterministic break");
    const body = (await response.json()) as { error: { code: string; message: string } };
    t.equal(body.error.code, "contract.violated");
    t.match(body.error.message, /summary/);
  });
});

t.test("timeouts: a long healthy stream is not cut, a stalled one is", async (t) => {
  const stack = await stackFor(t, { routeIdleTimeoutMs: 1_000 });
  const chat = `${stack.url}/v1/chat/completions`;
  // 16 output tokens: an unstreamed request of this size gets the 1 s timeout floor.
  const request = { model: "demo", max_tokens: 16, messages: [{ role: "user", content: "tell me about tides" }] };

  const healthy = await streamPost(chat, request, { "x-demo-first-token-ms": "100", "x-demo-inter-token-ms": "400" });
  const lasted = healthy.events.at(-1)?.at ?? 0;
  t.ok(lasted > 1_500, `the stream lasted ${Math.round(lasted)} ms, past the 1 s unstreamed timeout`);
  t.equal(healthy.events.at(-1)?.data, "[DONE]", "and ended well");

  const stalled = await streamPost(chat, request, { "x-demo-first-token-ms": "100", "x-demo-inter-token-ms": "3000" });
  t.notOk(
    stalled.events.some(({ data }) => data === "[DONE]"),
    "a stream with no data for longer than the route's idle_timeout is ended",
  );
});
