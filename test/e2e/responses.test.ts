// OpenAI's Responses API (`POST /v1/responses`) through the real Envoy and the guard, from the demo
// model's Responses endpoint pacing its typed events like an LLM server: a conforming streamed
// triage answer arrives spread over time, checked event by event, and ends with response.completed;
// a value that breaks demo.v1.TicketTriage is cut before it reaches the client with an SSE error
// event (no response.completed) and the model is stopped; unstreamed, a break is the guard's 502
// OpenAI error object; and the official OpenAI npm SDK streams through it all.
import OpenAI from "openai";
import t, { type Test } from "tap";
import { metricSum } from "../../bench/metrics-text.js";
import { renderOutput } from "../../src/demo/outputs.js";
import type { Stack } from "../../src/devstack/stack.js";
import type { JsonValue } from "../../src/pipeline/types.js";
import { post, stackFor, upstreamServed } from "../helpers/e2e.js";
import {
  eventually,
  guardMetrics,
  INTER_TOKEN_MS,
  PACING,
  type StreamEvent,
  sentBody,
  streamPost,
  streamsCancelled,
  TRIAGE,
} from "../helpers/sse-client.js";

const BREAK = { ...TRIAGE, "x-demo-variant": "empty_summary", "x-demo-version": "v2" };
const TEXT_PATH = "output[0].content[0].text<json>";

/** The events' JSON payloads (each Responses API event is one JSON object). */
function payloads(events: readonly StreamEvent[]): Record<string, unknown>[] {
  return events.map(({ data }) => JSON.parse(data) as Record<string, unknown>);
}

function deltaEvents(events: readonly StreamEvent[]): StreamEvent[] {
  return events.filter(({ event }) => event === "response.output_text.delta");
}

/** The text the output_text deltas add up to. */
function textOf(events: readonly StreamEvent[]): string {
  return payloads(deltaEvents(events))
    .map((event) => event.delta)
    .join("");
}

const checks = async (stack: Stack, result: string): Promise<number> =>
  metricSum(await guardMetrics(stack), "guard_contract_checks_total", { contract: "demo.v1.TicketTriage", result });

async function served(stack: Stack): Promise<number> {
  return (await upstreamServed(stack.light.url)) + (await upstreamServed(stack.heavy.url));
}

/** Asserts the text deltas were spread over the generation, not delivered in one burst. */
function assertPaced(t: Test, events: readonly StreamEvent[]): void {
  const deltas = deltaEvents(events);
  const first = deltas[0]?.at ?? 0;
  const last = deltas.at(-1)?.at ?? 0;
  const expected = (deltas.length - 1) * INTER_TOKEN_MS;
  t.ok(deltas.length >= 10, `${deltas.length} text deltas`);
  t.ok(last - first >= expected * 0.5, `deltas spread over ${Math.round(last - first)} ms of ${expected} ms generated`);
  // Enforcing, the guard holds the deltas of a value still being parsed and sends them on together
  // when it completes: they arrive in several groups, one per JSON value or so.
  const groups = new Set(deltas.map(({ at }) => Math.round(at / 10))).size;
  t.ok(groups >= 5, `deltas arrived at ${groups} distinct times`);
}

/** The text of the first output item's first part, when it is a message's output_text. */
function messageText(output: readonly OpenAI.Responses.ResponseOutputItem[]): string {
  const item = output[0];
  if (item?.type !== "message") return "";
  const part = item.content[0];
  return part?.type === "output_text" ? part.text : "";
}

async function caught(work: () => Promise<unknown>): Promise<unknown> {
  try {
    await work();
    return undefined;
  } catch (error) {
    return error;
  }
}

t.test("the Responses API through Envoy and the guard", async (t) => {
  const stack = await stackFor(t);
  const responses = `${stack.url}/v1/responses`;
  const triageRequest = { model: "triage-2024", input: "my order arrived broken, I want a refund" };

  t.test("a conforming streamed answer: paced, checked, complete, counted as passed", async (t) => {
    const passedBefore = await checks(stack, "passed");
    const answer = await streamPost(responses, triageRequest, { ...TRIAGE, ...PACING });
    t.equal(answer.status, 200);
    t.match(answer.headers.get("content-type"), /text\/event-stream/);
    t.equal(answer.headers.get("x-guard-route"), "responses", "the default config's responses route");
    t.notOk(answer.broken);
    assertPaced(t, answer.events);
    const events = payloads(answer.events);
    t.ok(
      answer.events.every(({ event }, index) => event === events[index]?.type),
      "every event keeps its name",
    );
    t.same(
      events.map((event) => event.sequence_number),
      events.map((_, index) => index),
      "every event arrived, in order",
    );
    const text = textOf(answer.events);
    t.same(JSON.parse(text), renderOutput("chat_structured", "v1", sentBody(triageRequest) as JsonValue));
    t.equal(answer.events.at(-1)?.event, "response.completed", "the stream ends with response.completed");
    t.match(events.at(-1), {
      response: {
        status: "completed",
        model: "triage-2024",
        output: [{ type: "message", content: [{ type: "output_text", text }] }],
        usage: { input_tokens: Number, output_tokens: Number, total_tokens: Number },
      },
    });
    t.notOk(
      answer.events.some(({ data }) => data === "[DONE]"),
      "no [DONE], as the Responses API sends none",
    );
    t.equal((await checks(stack, "passed")) - passedBefore, 1, "one passed check");
  });

  t.test("a value breaks the contract mid-stream: cut before it with an error event, the model stops", async (t) => {
    const cancelledBefore = await streamsCancelled(stack);
    const violatedBefore = await checks(stack, "violated");
    const answer = await streamPost(responses, triageRequest, { ...BREAK, ...PACING });
    t.equal(answer.status, 200, "the stream had started");
    t.notOk(answer.broken, "the cut is a clean end of the response, not a reset");
    const full = JSON.stringify(renderOutput("chat_structured", "empty_summary", sentBody(triageRequest) as JsonValue));
    const delivered = textOf(answer.events);
    t.ok(full.startsWith(delivered), "what arrived is a prefix of the answer");
    t.ok(delivered.includes('"tags":['), `the conforming fields before it arrived: ${delivered}`);
    t.notOk(
      answer.events.some(({ data }) => data.includes('\\"summary\\":\\"\\"')),
      "the violating value never arrived, in a delta or in any done event",
    );
    const last = answer.events.at(-1);
    t.equal(last?.event, "error", "the stream ends with an error event");
    t.notOk(
      answer.events.some(({ event }) => event === "response.completed" || event === "response.output_text.done"),
      "no response.completed (nor output_text.done): the client cannot mistake it for an answer",
    );
    const error = (JSON.parse(last?.data ?? "{}") as { error: Record<string, unknown> }).error;
    t.match(error, {
      type: "contract_violation",
      code: "contract.violated",
      model_version: "v2",
      violations: [{ field: `${TEXT_PATH}.summary`, rule: "string.min_len" }],
    });
    t.match(String(error.message), /violates its output contract.*summary/, "the message names the field");
    t.ok(
      await eventually(async () => (await streamsCancelled(stack)) > cancelledBefore),
      "the demo model saw the stream reset before it finished generating",
    );
    t.equal((await checks(stack, "violated")) - violatedBefore, 1, "one violated check");
  });

  t.test("a rule only the whole message shows: cut before the payload's done events", async (t) => {
    // priority 1 without needs_human breaks a message-level CEL rule: no single value is wrong, so
    // the final check on the assembled response decides; the event that finishes the payload
    // (output_text.done) and all after it wait for it.
    const answer = await streamPost(responses, triageRequest, {
      ...TRIAGE,
      ...PACING,
      "x-demo-variant": "urgent_without_human",
      "x-demo-version": "v2",
    });
    t.equal(answer.events.at(-1)?.event, "error");
    t.notOk(answer.events.some(({ event }) => event === "response.completed"));
    const error = (JSON.parse(answer.events.at(-1)?.data ?? "{}") as { error: Record<string, unknown> }).error;
    t.match(error, {
      code: "contract.violated",
      violations: [{ field: TEXT_PATH, rule: "triage.urgent_needs_human" }],
    });
    const seen = answer.events.map(({ event }) => event).filter((event) => event !== "response.output_text.delta");
    t.notOk(
      seen.some((event) => event?.endsWith(".done")),
      `no done event (output_text.done repeats the whole text) before the verdict: ${seen.join(", ")}`,
    );
  });

  t.test("unstreamed: a conforming answer passes, a break is the guard's 502 OpenAI error object", async (t) => {
    const ok = await post(responses, triageRequest, TRIAGE);
    t.equal(ok.status, 200);
    const body = JSON.parse(ok.text) as { object: string; output: { content: { text: string }[] }[] };
    t.equal(body.object, "response");
    t.same(JSON.parse(body.output[0]?.content[0]?.text ?? ""), renderOutput("chat_structured", "v1", triageRequest));

    const broken = await post(responses, triageRequest, BREAK);
    t.equal(broken.status, 502);
    t.equal(broken.headers.get("x-should-retry"), "false", "SDKs do not ask again for a deterministic break");
    t.equal(broken.headers.get("x-guard-reason"), "contract.violated");
    t.match(broken.headers.get("content-type"), /^application\/json/, "the OpenAI shape, not problem+json");
    const error = (JSON.parse(broken.text) as { error: Record<string, unknown> }).error;
    t.match(error, {
      code: "contract.violated",
      message: /violates its output contract.*summary/,
      model_version: "v2",
      violations: [{ field: `${TEXT_PATH}.summary`, rule: "string.min_len" }],
    });
    t.notOk(broken.text.includes("Customer contacted support"), "none of the model's output");
  });

  t.test("the OpenAI SDK: responses.create streams through the guard, and names the violation when cut", async (t) => {
    const client = new OpenAI({ apiKey: "not-checked", baseURL: `${stack.url}/v1`, maxRetries: 0 });
    const conforming = await client.responses.create(
      { model: triageRequest.model, input: triageRequest.input, stream: true },
      { headers: { ...TRIAGE, ...PACING } },
    );
    let text = "";
    const types: string[] = [];
    for await (const event of conforming) {
      types.push(event.type);
      if (event.type === "response.output_text.delta") text += event.delta;
      if (event.type === "response.completed") {
        t.equal(event.response.output_text, undefined, "(the SDK adds output_text to unstreamed responses only)");
        t.ok((event.response.usage?.output_tokens ?? 0) > 0, "usage on response.completed");
      }
    }
    // The demo derives its answer from the body's bytes, whose key order is the SDK's: compare shapes.
    t.same(
      Object.keys(JSON.parse(text) as object),
      Object.keys(renderOutput("chat_structured", "v1", triageRequest) as object),
      "text assembled from the deltas",
    );
    t.equal(types[0], "response.created");
    t.equal(types.at(-1), "response.completed");

    const broken = await client.responses.create(
      { model: triageRequest.model, input: triageRequest.input, stream: true },
      { headers: { ...BREAK, ...PACING } },
    );
    let brokenText = "";
    const error = await caught(async () => {
      for await (const event of broken) if (event.type === "response.output_text.delta") brokenText += event.delta;
    });
    if (!(error instanceof OpenAI.APIError)) return t.fail(`expected an APIError, got ${String(error)}`);
    t.equal(error.code, "contract.violated");
    t.equal(error.type, "contract_violation");
    t.equal(error.status, undefined, "raised mid-stream: the response itself was a 200");
    t.match(error.message, /violates its output contract.*summary/);
    t.ok(brokenText.includes('"tags":[') && !brokenText.includes('"summary":""'), `deltas before it: ${brokenText}`);
  });

  t.test("the OpenAI SDK's responses.stream helper: finalResponse rejects; a lagging loop ends quietly", async (t) => {
    const client = new OpenAI({ apiKey: "not-checked", baseURL: `${stack.url}/v1`, maxRetries: 0 });
    const conforming = client.responses.stream(
      { model: triageRequest.model, input: triageRequest.input },
      { headers: { ...TRIAGE, ...PACING } },
    );
    const final = await conforming.finalResponse();
    // The helper's final response has no output_text (6.x adds it only when it parses the output
    // against a zod format); the text is in the message item.
    t.equal(final.output_text, undefined);
    t.same(
      Object.keys(JSON.parse(messageText(final.output)) as object),
      Object.keys(renderOutput("chat_structured", "v1", triageRequest) as object),
      "finalResponse() carries the assembled JSON",
    );

    // The helper (ResponseStream) reads the stream on its own and queues events for the loop. The
    // error event makes it reject a read the loop has pending, so a loop keeping up raises the
    // APIError; but when the error comes while events are still queued, the loop gets them and
    // then ends WITHOUT raising. finalResponse() rejects with the APIError either way.
    const iterate = async (headers: Record<string, string>, perEventMs: number) => {
      const stream = client.responses.stream({ model: triageRequest.model, input: triageRequest.input }, { headers });
      const types: string[] = [];
      const raised = await caught(async () => {
        for await (const event of stream) {
          types.push(event.type);
          if (perEventMs > 0) await new Promise((resolve) => setTimeout(resolve, perEventMs));
        }
      });
      return { raised, types, final: await caught(() => stream.finalResponse()) };
    };
    const keepingUp = await iterate({ ...BREAK, ...PACING }, 0);
    if (!(keepingUp.final instanceof OpenAI.APIError)) return t.fail(`expected an APIError, got ${keepingUp.final}`);
    t.equal(keepingUp.final.code, "contract.violated");
    t.match(keepingUp.final.message, /violates its output contract.*summary/);
    t.equal(keepingUp.raised, keepingUp.final, "a loop keeping up with a paced stream raises the APIError");
    t.notOk(keepingUp.types.includes("response.completed"));

    const lagging = await iterate(BREAK, 20);
    t.equal(lagging.raised, undefined, "a loop behind the stream ends quietly: the cut looks like an end");
    t.notOk(lagging.types.includes("response.completed"), "though without response.completed");
    t.ok(lagging.types.includes("response.output_text.delta"), "after the deltas before the violation");
    t.ok(
      lagging.final instanceof OpenAI.APIError && lagging.final.code === "contract.violated",
      "finalResponse() still rejects with the violation",
    );
  });

  t.test("the OpenAI SDK unstreamed: a break raises a 502 InternalServerError, not retried", async (t) => {
    const client = new OpenAI({ apiKey: "not-checked", baseURL: `${stack.url}/v1` });
    const ok = await client.responses.create(
      { model: triageRequest.model, input: triageRequest.input },
      { headers: TRIAGE },
    );
    t.same(
      Object.keys(JSON.parse(ok.output_text) as object),
      Object.keys(renderOutput("chat_structured", "v1", triageRequest) as object),
    );
    const before = await served(stack);
    const error = await caught(() =>
      client.responses.create({ model: triageRequest.model, input: triageRequest.input }, { headers: BREAK }),
    );
    if (!(error instanceof OpenAI.InternalServerError)) return t.fail(`expected a 502, got ${String(error)}`);
    t.equal(error.status, 502);
    t.equal(error.code, "contract.violated");
    t.match(error.message, /violates its output contract/);
    t.equal(await served(stack), before + 1, "x-should-retry: false: generated once, not three times");
  });
});
