import t from "tap";
import { StreamAssembler } from "../../../src/streams/formats.js";
import { SseFramer } from "../../../src/streams/sse.js";
import { assemble, deltaText, responsesStream, sse, utf8 } from "./fixtures.js";

const RESPONSE = {
  id: "resp_67ccd2bed1ec8190",
  object: "response",
  created_at: 1_741_476_542,
  status: "completed",
  error: null,
  incomplete_details: null,
  instructions: null,
  model: "gpt-4.1-mini-2025-04-14",
  output: [
    {
      type: "message",
      id: "msg_67ccd2bf17f0",
      status: "completed",
      role: "assistant",
      content: [{ type: "output_text", text: '{"eta_days":3,"city":"Zürich","note":"出荷済み 📦"}', annotations: [] }],
    },
    {
      type: "function_call",
      id: "fc_12345xyz",
      call_id: "call_12345xyz",
      name: "track_parcel",
      arguments: '{"parcel":"CH-99","notify":true}',
      status: "completed",
    },
  ],
  parallel_tool_calls: true,
  temperature: 1,
  usage: { input_tokens: 36, output_tokens: 87, total_tokens: 123, output_tokens_details: { reasoning_tokens: 0 } },
};

const TEXT_TARGET = "output[0].content[0].text";
const ARGS_TARGET = "output[1].arguments";

t.test("responses: the document is response.completed's response, whatever byte the stream is cut at", async (t) => {
  const stream = responsesStream(RESPONSE);
  const bytes = utf8(stream).length;
  for (let cut = 1; cut < bytes; cut += 5) {
    const { assembler } = assemble("openai.responses", stream, [cut]);
    if (JSON.stringify(assembler.document()) !== JSON.stringify(RESPONSE)) {
      t.same(assembler.document(), RESPONSE, `cut at ${cut}`);
      return;
    }
  }
  t.pass(`${Math.ceil(bytes / 5)} cuts`);
});

t.test("responses: deltas per target, completions at the .done events, usage, model, done", async (t) => {
  const { assembler, readings } = assemble("openai.responses", responsesStream(RESPONSE));
  t.same(deltaText(readings), {
    [TEXT_TARGET]: RESPONSE.output[0]!.content![0]!.text,
    [ARGS_TARGET]: RESPONSE.output[1]!.arguments,
  });
  t.same(
    readings.flatMap((reading) => reading.completed),
    [TEXT_TARGET, ARGS_TARGET],
    "each once: .done first, output_item.done and response.completed add nothing new",
  );
  const completed = readings.at(-1)!;
  t.equal(completed.done, true);
  t.same(completed.usage, { promptTokens: 36, completionTokens: 87, totalTokens: 123 });
  t.equal(completed.model, "gpt-4.1-mini-2025-04-14");
  t.equal(readings[0]?.model, "gpt-4.1-mini-2025-04-14", "response.created names the model");
  t.equal(assembler.done, true);
  t.same(assembler.usage, { promptTokens: 36, completionTokens: 87, totalTokens: 123 });
  t.equal(
    readings.findIndex((reading) => reading.content),
    4,
    "created, in_progress, item, part, then the first delta",
  );
});

t.test("responses: before response.completed, the document is assembled from the deltas", async (t) => {
  const stream = responsesStream(RESPONSE, { completed: false });
  for (let cut = 1; cut < utf8(stream).length; cut += 11) {
    const { assembler } = assemble("openai.responses", stream, [cut]);
    t.same(assembler.document(), { ...RESPONSE, status: "in_progress", usage: null }, `cut at ${cut}`);
  }
  const { assembler } = assemble("openai.responses", stream);
  t.equal(assembler.done, false);
  t.equal(assembler.usage, undefined);
});

t.test("responses: deltas with no item or part announced build a default message and function call", async (t) => {
  const { assembler, readings } = assemble(
    "openai.responses",
    [
      sse({ type: "response.output_text.delta", output_index: 0, content_index: 0, delta: "Hi" }),
      sse({ type: "response.output_text.delta", output_index: 0, content_index: 0, delta: "" }),
      sse({ type: "response.refusal.delta", output_index: 0, content_index: 1, delta: "No." }),
      sse({ type: "response.function_call_arguments.delta", output_index: 1, delta: "{}" }),
      sse({ type: "response.function_call_arguments.delta", output_index: 1, delta: "" }),
      sse({ type: "response.output_item.added", output_index: 2, item: { type: "function_call", name: "f" } }),
      sse({ type: "response.output_item.added", output_index: 3, item: { type: "message", role: "assistant" } }),
      sse({ type: "response.output_item.added", output_index: 4, item: { type: "reasoning", summary: [] } }),
    ].join(""),
  );
  t.same(assembler.document(), {
    object: "response",
    model: null,
    output: [
      {
        type: "message",
        role: "assistant",
        content: [
          { type: "output_text", annotations: [], text: "Hi" },
          { type: "refusal", refusal: "No." },
        ],
      },
      { type: "function_call", arguments: "{}" },
      { type: "function_call", name: "f", arguments: "" },
      { type: "message", role: "assistant", content: [] },
      { type: "reasoning", summary: [] },
    ],
  });
  t.same(
    readings.map((reading) => reading.content),
    [true, false, true, true, false, false, false, false],
  );
});

t.test("responses: a refusal part, and an item that comes whole in output_item.done", async (t) => {
  const refused = {
    ...RESPONSE,
    output: [
      {
        type: "message",
        id: "msg_r",
        status: "completed",
        role: "assistant",
        content: [{ type: "refusal", refusal: "I can't help with that." }],
      },
    ],
  };
  const { assembler, readings } = assemble("openai.responses", responsesStream(refused, { completed: false }));
  t.same(assembler.document(), { ...refused, status: "in_progress", usage: null });
  t.same(deltaText(readings), { "output[0].content[0].refusal": "I can't help with that." });
  t.same(
    readings.flatMap((reading) => reading.completed),
    ["output[0].content[0].refusal"],
  );

  const item = {
    type: "message",
    id: "m",
    status: "completed",
    role: "assistant",
    content: [{ type: "output_text", text: "whole" }],
  };
  const whole = assemble(
    "openai.responses",
    sse({ type: "response.output_item.added", output_index: 0, item: { ...item, content: [] } }) +
      sse({ type: "response.output_item.done", output_index: 0, item }),
  );
  t.same((whole.assembler.document() as { output: unknown }).output, [item]);
  t.same(whole.readings[1]?.completed, ["output[0].content[0].text"]);
});

t.test("responses: response.failed and error events are upstream errors; incomplete just ends", async (t) => {
  const failed = assemble(
    "openai.responses",
    sse({
      type: "response.failed",
      response: {
        ...RESPONSE,
        status: "failed",
        output: [],
        usage: null,
        error: { code: "server_error", message: "boom" },
      },
    }),
  );
  t.same(failed.readings[0]?.error, { message: "boom", code: "server_error" });
  t.equal(failed.readings[0]?.done, true);
  t.equal(failed.assembler.done, true);

  const bare = assemble("openai.responses", sse({ type: "response.failed", response: { error: null } }));
  t.same(bare.readings[0]?.error, { message: "response.failed without an error" });

  const error = assemble(
    "openai.responses",
    sse(
      { type: "error", code: "ERR_SOMETHING", message: "Something went wrong", param: null, sequence_number: 1 },
      "error",
    ) + sse({ type: "error", sequence_number: 2 }),
  );
  t.same(
    error.readings.map((reading) => reading.error),
    [{ message: "Something went wrong", code: "ERR_SOMETHING" }, { message: "error event" }],
  );
  t.equal(error.readings[0]?.done, false);

  const incomplete = { ...RESPONSE, status: "incomplete", incomplete_details: { reason: "max_output_tokens" } };
  const cut = assemble("openai.responses", sse({ type: "response.incomplete", response: incomplete }));
  t.equal(cut.readings[0]?.error, undefined);
  t.equal(cut.readings[0]?.done, true);
  t.same(cut.assembler.document(), incomplete);
  t.same(cut.readings[0]?.completed, [TEXT_TARGET, ARGS_TARGET], "done completes the response's targets");
});

t.test("responses: the SSE event name stands in for a missing type; unknown types are ignored", async (t) => {
  const { assembler, readings } = assemble(
    "openai.responses",
    sse({ output_index: 0, content_index: 0, delta: "ok" }, "response.output_text.delta") +
      sse({ type: "response.reasoning_summary_text.delta", output_index: 0, summary_index: 0, delta: "hm" }),
  );
  t.same(deltaText(readings), { [TEXT_TARGET]: "ok" });
  t.same(readings[1], { deltas: [], completed: [], documents: [], done: false, content: false });
  t.equal(assembler.contentEvents, 1);
});

t.test("responses: events that are not what their type says are malformed, and ignored", async (t) => {
  const assembler = new StreamAssembler("openai.responses");
  const read = (value: unknown) => {
    const [event] = new SseFramer().push(utf8(sse(value)));
    return assembler.read(event!).malformed;
  };
  t.equal(read('"text"'), "expected a Responses API event object");
  t.equal(read({ delta: "x" }), "Responses API event without a type");
  t.equal(read({ type: "response.created" }), "response.created: no response object");
  t.equal(
    read({ type: "response.output_text.delta", output_index: 0, delta: "x" }),
    "response.output_text.delta: no output_index or content_index",
  );
  t.equal(
    read({ type: "response.output_text.delta", output_index: 0, content_index: 0, delta: 1 }),
    "response.output_text.delta: delta is not a string",
  );
  t.equal(
    read({ type: "response.function_call_arguments.delta", output_index: -1, delta: "x" }),
    "response.function_call_arguments.delta: no output_index",
  );
  t.equal(
    read({ type: "response.function_call_arguments.delta", output_index: 0, delta: null }),
    "response.function_call_arguments.delta: delta is not a string",
  );
  t.equal(read({ type: "response.output_item.added", output_index: 0 }), "response.output_item.added: no item object");
  t.equal(
    read({ type: "response.content_part.added", output_index: 0, content_index: 0 }),
    "response.content_part.added: no part object",
  );
  t.same(assembler.document(), { object: "response", model: null, output: [] }, "nothing of them was kept");
});

t.test("responses: a content_part.added after the part's first delta keeps the text", async (t) => {
  const { assembler } = assemble(
    "openai.responses",
    sse({ type: "response.output_text.delta", output_index: 0, content_index: 0, delta: "a" }) +
      sse({
        type: "response.content_part.added",
        output_index: 0,
        content_index: 0,
        part: { type: "output_text", text: "", annotations: [], logprobs: [] },
      }),
  );
  t.same((assembler.document() as { output: unknown }).output, [
    {
      type: "message",
      role: "assistant",
      content: [{ type: "output_text", text: "a", annotations: [], logprobs: [] }],
    },
  ]);
});

t.test("responses: beyond maxDocumentBytes, argument deltas are reported but not kept", async (t) => {
  const { assembler, readings } = assemble(
    "openai.responses",
    responsesStream(RESPONSE, { completed: false, piece: 8 }),
    [],
    {
      maxDocumentBytes: 60,
    },
  );
  t.equal(assembler.overflowed, true);
  t.same(deltaText(readings)[ARGS_TARGET], RESPONSE.output[1]!.arguments);
  const output = (assembler.document() as typeof RESPONSE).output;
  t.ok(output[1]!.arguments!.length < RESPONSE.output[1]!.arguments!.length);
});

t.test("responses: done completes the text targets of whatever output the final response has", async (t) => {
  const output = [
    null,
    { type: "reasoning" },
    {
      type: "message",
      content: [null, { type: "input_text" }, { type: "refusal", refusal: "no" }, { type: "output_text" }],
    },
    { type: "function_call", arguments: "{}" },
  ];
  const { readings } = assemble(
    "openai.responses",
    sse({ type: "response.completed", response: { output } }) +
      sse({ type: "response.completed", response: { output: "?" } }),
  );
  t.same(readings[0]?.completed, ["output[2].content[2].refusal", "output[2].content[3].text", "output[3].arguments"]);
  t.same(readings[1]?.completed, [], "no output array: nothing to complete");
  t.equal(readings[0]?.usage, undefined);
});

t.test("responses: a function call that comes whole keeps its arguments", async (t) => {
  const item = { type: "function_call", name: "f", call_id: "c", arguments: '{"x":1}', status: "completed" };
  const { assembler, readings } = assemble(
    "openai.responses",
    sse({
      type: "response.output_item.added",
      output_index: 0,
      item: { ...item, arguments: "", status: "in_progress" },
    }) + sse({ type: "response.output_item.done", output_index: 0, item }),
  );
  t.same((assembler.document() as { output: unknown }).output, [item]);
  t.same(readings[1]?.completed, ["output[0].arguments"]);
});
