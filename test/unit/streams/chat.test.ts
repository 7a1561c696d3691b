import t from "tap";
import { StreamAssembler } from "../../../src/streams/formats.js";
import { SseFramer } from "../../../src/streams/sse.js";
import { assemble, chatStream, completionsStream, deltaText, sse, utf8 } from "./fixtures.js";

// A structured answer, with characters of 2, 3 and 4 UTF-8 bytes.
const JSON_ANSWER = {
  id: "chatcmpl-9a8b7c",
  object: "chat.completion",
  created: 1_730_000_000,
  model: "gpt-4o-mini-2024-07-18",
  system_fingerprint: "fp_0ba0d124f1",
  choices: [
    {
      index: 0,
      message: {
        role: "assistant",
        content: '{"sentiment":"positive","score":0.93,"summary":"très bien, 日本語 OK 🙂"}',
      },
      finish_reason: "stop",
    },
  ],
  usage: { prompt_tokens: 31, completion_tokens: 24, total_tokens: 55 },
};

const TOOL_CALLS = {
  id: "chatcmpl-tools",
  object: "chat.completion",
  created: 1_730_000_100,
  model: "gpt-4o-2024-08-06",
  choices: [
    {
      index: 0,
      message: {
        role: "assistant",
        content: null,
        tool_calls: [
          {
            id: "call_a1",
            type: "function",
            function: { name: "get_weather", arguments: '{"city":"Paris","unit":"c"}' },
          },
          { id: "call_b2", type: "function", function: { name: "get_time", arguments: '{"tz":"Europe/Paris"}' } },
        ],
      },
      finish_reason: "tool_calls",
    },
  ],
  usage: { prompt_tokens: 80, completion_tokens: 40, total_tokens: 120 },
};

const TWO_CHOICES = {
  id: "chatcmpl-n2",
  object: "chat.completion",
  created: 1_730_000_200,
  model: "gpt-4o-mini",
  choices: [
    { index: 0, message: { role: "assistant", content: "Bonjour à tous." }, finish_reason: "stop" },
    {
      index: 1,
      message: { role: "assistant", content: null, refusal: "I can't help with that." },
      finish_reason: "stop",
    },
  ],
  usage: { prompt_tokens: 12, completion_tokens: 18, total_tokens: 30 },
};

/** The first cut of `stream` (every `stride`-th byte) whose assembled document is not `expected`, if any. */
function firstBadCut(format: "openai.chat" | "openai.completions", stream: string, expected: unknown, stride = 1) {
  const want = JSON.stringify(expected);
  for (let cut = 1; cut < utf8(stream).length; cut += stride)
    if (JSON.stringify(assemble(format, stream, [cut]).assembler.document()) !== want) return cut;
  return undefined;
}

t.test("chat: the assembled document is the non-streamed one, whatever byte the stream is cut at", async (t) => {
  const small = {
    ...JSON_ANSWER,
    choices: [{ ...JSON_ANSWER.choices[0]!, message: { role: "assistant", content: '{"a":"é日🙂"}' } }],
  };
  t.equal(firstBadCut("openai.chat", chatStream(small, { piece: 2 }), small), undefined, "every cut of a small stream");
  const stream = chatStream(JSON_ANSWER);
  t.equal(firstBadCut("openai.chat", stream, JSON_ANSWER, 17), undefined, "every 17th cut of a realistic one");
  const byteAtATime = Array.from({ length: utf8(stream).length }, (_, i) => i);
  t.same(assemble("openai.chat", stream, byteAtATime).assembler.document(), JSON_ANSWER, "a byte at a time");
  t.same(assemble("openai.chat", stream).assembler.document(), JSON_ANSWER, "in one chunk");
});

t.test("chat: deltas, first content, completion at finish_reason, usage, model and [DONE]", async (t) => {
  const { assembler, readings } = assemble("openai.chat", chatStream(JSON_ANSWER));
  const content = JSON_ANSWER.choices[0]!.message.content;
  t.same(deltaText(readings), { "choices[0].message.content": content });
  t.equal(readings[0]?.content, false, "the role chunk carries no output");
  t.equal(readings[1]?.content, true, "the first token");
  t.equal(assembler.contentEvents, Math.ceil(Array.from(content).length / 3));
  const finish = readings.findIndex((reading) => reading.completed.length > 0);
  t.same(readings[finish]?.completed, ["choices[0].message.content"]);
  t.equal(readings[finish]?.done, false);
  const last = readings.at(-1)!;
  t.same(
    last,
    { deltas: [], completed: [], documents: [], done: true, content: false },
    "[DONE], nothing left to complete",
  );
  t.same(readings.at(-2)?.usage, { promptTokens: 31, completionTokens: 24, totalTokens: 55 });
  t.same(assembler.usage, { promptTokens: 31, completionTokens: 24, totalTokens: 55 });
  t.equal(readings[0]?.model, "gpt-4o-mini-2024-07-18");
  t.equal(assembler.model, "gpt-4o-mini-2024-07-18");
  t.equal(assembler.done, true);
  t.equal(assembler.overflowed, false);
  t.equal(assembler.format, "openai.chat");
});

t.test("chat: tool-call arguments across chunks, under every cut; content null beside tool calls", async (t) => {
  const stream = chatStream(TOOL_CALLS, { piece: 2 });
  t.equal(firstBadCut("openai.chat", stream, TOOL_CALLS, 9), undefined, "every 9th cut");
  const { readings } = assemble("openai.chat", stream);
  t.same(deltaText(readings), {
    "choices[0].message.tool_calls[0].function.arguments": '{"city":"Paris","unit":"c"}',
    "choices[0].message.tool_calls[1].function.arguments": '{"tz":"Europe/Paris"}',
  });
  t.same(readings.find((reading) => reading.completed.length > 0)?.completed, [
    "choices[0].message.content",
    "choices[0].message.tool_calls[0].function.arguments",
    "choices[0].message.tool_calls[1].function.arguments",
  ]);
});

t.test("chat: two interleaved choices, one a refusal", async (t) => {
  const stream = chatStream(TWO_CHOICES, { piece: 4 });
  t.equal(firstBadCut("openai.chat", stream, TWO_CHOICES, 7), undefined, "every 7th cut");
  const { readings } = assemble("openai.chat", stream);
  t.same(deltaText(readings), {
    "choices[0].message.content": "Bonjour à tous.",
    "choices[1].message.refusal": "I can't help with that.",
  });
  t.same(
    readings.flatMap((reading) => reading.completed),
    ["choices[0].message.content", "choices[1].message.content", "choices[1].message.refusal"],
  );
});

t.test("chat: a stream that ends without [DONE] and never sends usage", async (t) => {
  const { assembler, readings } = assemble("openai.chat", chatStream(JSON_ANSWER, { usage: false, done: false }));
  const { usage: _usage, ...withoutUsage } = JSON_ANSWER;
  t.same(assembler.document(), withoutUsage);
  t.equal(assembler.done, false);
  t.equal(assembler.usage, undefined);
  t.ok(readings.every((reading) => reading.usage === undefined && !reading.done));
  const pieces = Math.ceil(Array.from(JSON_ANSWER.choices[0]!.message.content).length / 3);
  t.equal(assembler.contentEvents, pieces, "content events stand in for the output tokens");
});

t.test("chat: a stream cut off mid-answer assembles what came, with no finish_reason", async (t) => {
  const assembler = new StreamAssembler("openai.chat");
  const chunk = (delta: object) => ({
    id: "c1",
    object: "chat.completion.chunk",
    created: 1,
    model: "m",
    choices: [{ index: 0, delta }],
  });
  const framer = new SseFramer();
  for (const event of framer.push(
    utf8(`${sse(chunk({ role: "assistant" }))}${sse(chunk({ content: '{"a":' }))}data: {"id"`),
  ))
    assembler.read(event);
  t.same(assembler.document(), {
    id: "c1",
    object: "chat.completion",
    created: 1,
    model: "m",
    choices: [{ index: 0, message: { role: "assistant", content: '{"a":' }, finish_reason: null }],
  });
  t.equal(framer.midEvent, true);
});

t.test("chat: malformed JSON in one event is reported and skipped; the rest assembles", async (t) => {
  const stream = chatStream(JSON_ANSWER);
  const events = stream.split("\n\n");
  events.splice(3, 0, 'data: {"id":"chatcmpl-9a8b7c","choices":[{"delta":{"content":"oops"}');
  const { assembler, readings } = assemble("openai.chat", events.join("\n\n"));
  t.same(assembler.document(), JSON_ANSWER);
  const bad = readings[3]!;
  t.same(bad, { deltas: [], completed: [], documents: [], done: false, malformed: "data is not JSON", content: false });
});

t.test("chat: JSON that is not a chunk is malformed; odd members inside one are skipped", async (t) => {
  const assembler = new StreamAssembler("openai.chat");
  const read = (value: unknown) => {
    const [event] = new SseFramer().push(utf8(sse(value)));
    return assembler.read(event!);
  };
  t.equal(read([1, 2]).malformed, "expected a chat.completion chunk object");
  t.equal(read({ id: "x" }).malformed, "expected a chat.completion chunk: no choices array");
  t.equal(read({ id: "x", choices: {} }).malformed, "expected a chat.completion chunk: no choices array");
  const odd = read({
    id: 7,
    created: "soon",
    choices: [
      null,
      {
        index: -1,
        delta: { role: "", content: 5, tool_calls: [null, { index: 0, function: "f" }, { id: "", type: "" }] },
      },
      { delta: null, finish_reason: 3 },
    ],
  });
  t.equal(odd.malformed, undefined);
  t.same(odd.deltas, []);
  t.same(assembler.document(), {
    id: null,
    object: "chat.completion",
    created: null,
    model: null,
    choices: [
      {
        index: 1,
        message: {
          role: "assistant",
          content: null,
          tool_calls: [
            { id: null, type: "function", function: { name: null, arguments: "" } },
            { id: null, type: "function", function: { name: null, arguments: "" } },
          ],
        },
        finish_reason: null,
      },
      { index: 2, message: { role: "assistant", content: "" }, finish_reason: null },
    ],
  });
});

t.test("chat: llama.cpp style — data: without a space, null and empty content, no usage, no index", async (t) => {
  const chunk = (delta: object, finish: string | null = null) =>
    `data:${JSON.stringify({ id: "chatcmpl-l", object: "chat.completion.chunk", created: 5, model: "qwen2.5-7b", choices: [{ delta, finish_reason: finish }] })}\n\n`;
  const stream = [
    chunk({ role: "assistant", content: null }),
    chunk({ content: "" }),
    chunk({ content: "Hel" }),
    chunk({ content: "lo" }),
    chunk({}, "stop"),
    "data: [DONE]\n\n",
  ].join("");
  const { assembler, readings } = assemble("openai.chat", stream);
  t.same(assembler.document(), {
    id: "chatcmpl-l",
    object: "chat.completion",
    created: 5,
    model: "qwen2.5-7b",
    choices: [{ index: 0, message: { role: "assistant", content: "Hello" }, finish_reason: "stop" }],
  });
  t.same(
    readings.map((reading) => reading.content),
    [false, false, true, true, false, false],
  );
});

t.test("chat: Azure's leading chunk with empty id, created and model and no choices is a placeholder", async (t) => {
  const azure = sse({
    choices: [],
    created: 0,
    id: "",
    model: "",
    object: "",
    prompt_filter_results: [{ prompt_index: 0, content_filter_results: {} }],
  });
  const { assembler, readings } = assemble("openai.chat", azure + chatStream(JSON_ANSWER));
  t.same(assembler.document(), JSON_ANSWER);
  t.same(readings[0], { deltas: [], completed: [], documents: [], done: false, content: false });
});

t.test("chat: vLLM's continuous usage, on every chunk: each is reported, the last one stands", async (t) => {
  const base = { id: "c", object: "chat.completion.chunk", created: 1, model: "m" };
  const stream = [1, 2, 3]
    .map((n) =>
      sse({
        ...base,
        choices: [{ index: 0, delta: { content: "x" } }],
        usage: { prompt_tokens: 10, completion_tokens: n, total_tokens: 10 + n },
      }),
    )
    .join("");
  const { assembler, readings } = assemble("openai.chat", stream);
  t.same(
    readings.map((reading) => reading.usage?.completionTokens),
    [1, 2, 3],
  );
  t.same(assembler.usage, { promptTokens: 10, completionTokens: 3, totalTokens: 13 });
  t.same((assembler.document() as { usage: unknown }).usage, {
    prompt_tokens: 10,
    completion_tokens: 3,
    total_tokens: 13,
  });
});

t.test("chat: upstream errors — an error object, an error event, an error event that is not JSON", async (t) => {
  const { readings } = assemble(
    "openai.chat",
    [
      sse({ error: { message: "The server is overloaded", type: "server_error", code: 503 } }),
      sse({ error: "boom" }),
      sse({ message: "rate limited", code: "rate_limit" }, "error"),
      sse("upstream went away", "error"),
      sse({ error: { code: "x" } }),
      sse(42, "error"),
    ].join(""),
  );
  t.same(
    readings.map((reading) => reading.error),
    [
      { message: "The server is overloaded", type: "server_error", code: "503" },
      { message: "boom" },
      { message: "rate limited", code: "rate_limit" },
      { message: "upstream went away" },
      { message: '{"code":"x"}', code: "x" },
      { message: "42" },
    ],
  );
  t.ok(readings.every((reading) => !reading.done && reading.malformed === undefined));
});

t.test("chat: heartbeats, id-only blocks and blank data are no reading", async (t) => {
  const { assembler, readings } = assemble("openai.chat", ": keep-alive\n\nid: 3\n\ndata:\n\ndata:  \n\n");
  t.equal(readings.length, 4);
  for (const reading of readings)
    t.same(reading, { deltas: [], completed: [], documents: [], done: false, content: false });
  t.equal(assembler.contentEvents, 0);
});

t.test("chat: beyond maxDocumentBytes deltas are still reported but no longer kept", async (t) => {
  const { assembler, readings } = assemble("openai.chat", chatStream(JSON_ANSWER, { piece: 10 }), [], {
    maxDocumentBytes: 25,
  });
  t.equal(assembler.overflowed, true);
  t.same(deltaText(readings), { "choices[0].message.content": JSON_ANSWER.choices[0]!.message.content });
  const document = assembler.document() as typeof JSON_ANSWER;
  t.equal(document.choices[0]!.message.content, '{"sentiment":"positi', "the 20 bytes that fit; 10 more would not");
});

const COMPLETION = {
  id: "cmpl-7f",
  object: "text_completion",
  created: 1_730_000_300,
  model: "gpt-3.5-turbo-instruct",
  choices: [
    { index: 0, text: "\n\nThe answer is 42 — naïve but 正しい.", finish_reason: "stop" },
    { index: 1, text: " Forty-two.", finish_reason: "length" },
  ],
  usage: { prompt_tokens: 9, completion_tokens: 21, total_tokens: 30 },
};

t.test("completions: the assembled text_completion, whatever byte the stream is cut at", async (t) => {
  const stream = completionsStream(COMPLETION);
  t.equal(firstBadCut("openai.completions", stream, COMPLETION), undefined, "every cut");
  const { assembler, readings } = assemble("openai.completions", stream);
  t.same(deltaText(readings), { "choices[0].text": COMPLETION.choices[0]!.text, "choices[1].text": " Forty-two." });
  t.same(
    readings.flatMap((reading) => reading.completed),
    ["choices[1].text", "choices[0].text"],
    "the shorter choice finishes first",
  );
  t.same(assembler.usage, { promptTokens: 9, completionTokens: 21, totalTokens: 30 });
  t.equal(assembler.done, true);
});

t.test("completions: without usage, [DONE] completes what finish_reason did not", async (t) => {
  const { usage: _usage, ...withoutUsage } = COMPLETION;
  const stream = completionsStream(COMPLETION, { usage: false }).replace(
    /"finish_reason":"length"/,
    '"finish_reason":null',
  );
  const { assembler, readings } = assemble("openai.completions", stream);
  t.same(assembler.document(), {
    ...withoutUsage,
    choices: [COMPLETION.choices[0], { ...COMPLETION.choices[1], finish_reason: null }],
  });
  t.same(readings.at(-1)?.completed, ["choices[1].text"]);
  t.same(readings.at(-1)?.done, true);
});

t.test("completions: a chunk without choices is malformed", async (t) => {
  const { readings } = assemble("openai.completions", sse({ object: "text_completion" }));
  t.equal(readings[0]?.malformed, "expected a text_completion chunk: no choices array");
});

t.test("chat: choice and tool-call indexes are bounded, so a hostile stream cannot open unbounded state", async (t) => {
  const assembler = new StreamAssembler("openai.chat");
  const read = (value: unknown) => {
    const [event] = new SseFramer().push(utf8(sse(value)));
    return assembler.read(event!);
  };
  const chunk = (choice: unknown) => ({ id: "x", object: "chat.completion.chunk", choices: [choice] });
  t.equal(read(chunk({ index: 127, delta: { content: "a" } })).malformed, undefined, "128 choices is OpenAI's n limit");
  t.equal(read(chunk({ index: 128, delta: { content: "a" } })).malformed, "choice index beyond 127");
  t.equal(
    read(chunk({ index: 0, delta: { tool_calls: [{ index: 500, function: { arguments: "{" } }] } })).malformed,
    "tool call index beyond 127",
  );
});
