import { createHash } from "node:crypto";
import { request } from "node:http";
import { gunzipSync } from "node:zlib";
import t from "tap";
import { type BatcherClock, realClock } from "../../../src/demo/batcher.js";
import { answer } from "../../../src/demo/endpoints.js";
import { renderOutput } from "../../../src/demo/outputs.js";
import { createDemoModel, type DemoStats, type RecordedRequest } from "../../../src/demo/server.js";
import type { DemoOptions } from "../../../src/demo/settings.js";

/** All startModel needs from a test: a place to hang the server shutdown. */
type Test = Pick<typeof t, "teardown">;

/** A real demo model on an ephemeral port, closed when the test ends. */
async function startModel(t: Test, options: DemoOptions = {}, clock: BatcherClock = realClock) {
  const model = createDemoModel({ pool: "light", ...options }, clock);
  const { url } = await model.listen(0, "127.0.0.1");
  t.teardown(() => model.close());
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  const control = async <T>(path: string, body?: unknown): Promise<T> => {
    const response = await fetch(
      `${url}/__demo/${path}`,
      body === undefined ? {} : { method: "POST", body: JSON.stringify(body) },
    );
    return (await response.json()) as T;
  };
  return { model, url, post, control };
}

const chatRequest = { model: "demo-llm", messages: [{ role: "user", content: "How late is my order?" }] };

t.test("chat completion: OpenAI shape, version and pool headers, body checksum", async (t) => {
  const { post } = await startModel(t, { pool: "pool-marker-xyz" });
  const sent = JSON.stringify({ ...chatRequest, n: 2 });
  const response = await post("/v1/chat/completions", sent);
  t.equal(response.status, 200);
  t.equal(response.headers.get("x-model-version"), "v1");
  t.equal(response.headers.get("x-demo-pool"), "pool-marker-xyz");
  t.match(response.headers.get("content-type"), /^application\/json/);
  t.equal(response.headers.get("x-demo-request-sha256"), createHash("sha256").update(sent).digest("hex"));
  const text = await response.text();
  t.notMatch(text, /pool-marker-xyz/, "the pool never appears in the body");
  t.match(JSON.parse(text), {
    id: String,
    object: "chat.completion",
    created: Number,
    model: "demo-llm",
    choices: [
      { index: 0, message: { role: "assistant", content: String }, finish_reason: "stop" },
      { index: 1, message: { role: "assistant", content: String }, finish_reason: "stop" },
    ],
    usage: {
      prompt_tokens: Math.ceil("How late is my order?".length / 4),
      completion_tokens: Number,
      total_tokens: Number,
    },
  });
});

t.test("structured output: json_schema name, variant via config and via header", async (t) => {
  const { post, control } = await startModel(t);
  const structured = {
    ...chatRequest,
    response_format: { type: "json_schema", json_schema: { name: "sentiment", schema: {} } },
  };
  const contentOf = async (response: Response): Promise<unknown> => {
    const body = (await response.json()) as { choices: { message: { content: string } }[] };
    return JSON.parse(body.choices[0]?.message.content ?? "");
  };

  t.same(await contentOf(await post("/v1/chat/completions", structured)), renderOutput("sentiment", "v1", structured));

  const applied = await control<{ version: string; variant: string }>("config", {
    version: "v2",
    variant: "score_rescaled",
  });
  t.match(applied, { version: "v2", variant: "score_rescaled" });
  const rolledOut = await post("/v1/chat/completions", structured);
  t.equal(rolledOut.headers.get("x-model-version"), "v2");
  t.same(await contentOf(rolledOut), renderOutput("sentiment", "score_rescaled", structured));

  const perRequest = await post("/v1/chat/completions", structured, {
    "x-demo-variant": "v1",
    "x-demo-version": "v1-canary",
  });
  t.equal(perRequest.headers.get("x-model-version"), "v1-canary");
  t.same(await contentOf(perRequest), renderOutput("sentiment", "v1", structured));
});

t.test("structured output: x-demo-task with x-demo-fence wraps the JSON in a markdown fence", async (t) => {
  const { post } = await startModel(t);
  const response = await post("/v1/chat/completions", chatRequest, { "x-demo-task": "sentiment", "x-demo-fence": "1" });
  const body = (await response.json()) as { choices: { message: { content: string } }[] };
  const content = body.choices[0]?.message.content ?? "";
  const fenced = /^\s+```json\n(.*)\n```\s+$/s.exec(content);
  t.ok(fenced, `fenced with surrounding whitespace: ${JSON.stringify(content)}`);
  t.same(JSON.parse(fenced?.[1] ?? "null"), renderOutput("sentiment", "v1", chatRequest));
});

t.test("structured output: a prose (string) output is the content verbatim, not a JSON string", async (t) => {
  const { post } = await startModel(t);
  const response = await post("/v1/chat/completions", chatRequest, {
    "x-demo-task": "chat_structured",
    "x-demo-variant": "prose_not_json",
  });
  const body = (await response.json()) as { choices: { message: { content: string } }[] };
  t.equal(body.choices[0]?.message.content, renderOutput("chat_structured", "prose_not_json", chatRequest));
});

/** Splits an SSE body into its data payloads. */
function sseData(text: string): string[] {
  return text
    .split("\n\n")
    .filter((frame) => frame !== "")
    .map((frame) => {
      if (!frame.startsWith("data: ")) throw new Error(`not a data frame: ${frame}`);
      return frame.slice("data: ".length);
    });
}

t.test("streaming chat: SSE chunks that add up to the non-streamed answer, then [DONE]", async (t) => {
  const { post } = await startModel(t);
  const whole = (await (await post("/v1/chat/completions", chatRequest)).json()) as {
    choices: { message: { content: string } }[];
  };
  const response = await post("/v1/chat/completions", { ...chatRequest, stream: true });
  t.equal(response.status, 200);
  t.match(response.headers.get("content-type"), /^text\/event-stream/);
  t.equal(response.headers.get("x-model-version"), "v1");
  const data = sseData(await response.text());
  t.equal(data.at(-1), "[DONE]");
  const chunks = data.slice(0, -1).map(
    (payload) =>
      JSON.parse(payload) as {
        object: string;
        choices: { delta: { role?: string; content?: string }; finish_reason: string | null }[];
      },
  );
  t.ok(chunks.length >= 4, "several chunk events");
  t.ok(chunks.every((chunk) => chunk.object === "chat.completion.chunk"));
  t.equal(chunks[0]?.choices[0]?.delta.role, "assistant");
  t.equal(chunks.at(-1)?.choices[0]?.finish_reason, "stop");
  const streamed = chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("");
  t.equal(streamed, whole.choices[0]?.message.content);
});

t.test("x-demo-trailers: a stream ends with announced HTTP/1.1 trailers, paced or not", async (t) => {
  const { url } = await startModel(t);
  const trailersOf = (headers: Record<string, string>) =>
    new Promise<{ announced: string | undefined; trailers: Record<string, string> }>((resolve, reject) => {
      const sent = request(
        `${url}/v1/chat/completions`,
        { method: "POST", headers: { "content-type": "application/json", ...headers } },
        (response) => {
          response.resume();
          response.once("end", () =>
            resolve({ announced: response.headers.trailer, trailers: response.trailers as Record<string, string> }),
          );
        },
      );
      sent.once("error", reject);
      sent.end(JSON.stringify({ ...chatRequest, stream: true }));
    });
  for (const pacing of [{}, { "x-demo-first-token-ms": "5", "x-demo-inter-token-ms": "1" }]) {
    const ended = await trailersOf({ "x-demo-trailers": "1", ...pacing });
    t.equal(ended.announced, "x-demo-stream-end");
    t.same(ended.trailers, { "x-demo-stream-end": "completed" });
  }
  t.same((await trailersOf({})).trailers, {}, "none unless asked");
});

t.test("Ollama /api/chat: NDJSON lines unless stream: false, the done line with the counts", async (t) => {
  const { post } = await startModel(t);
  const request = {
    model: "demo",
    messages: [{ role: "user", content: "tell me about tides" }],
    options: { num_predict: 20 },
  };
  const whole = await post("/api/chat", { ...request, stream: false });
  t.match(whole.headers.get("content-type"), /^application\/json/);
  const answer = (await whole.json()) as { message: { content: string }; done: boolean; eval_count: number };
  t.equal(answer.done, true);
  const response = await post("/api/chat", request);
  t.equal(response.status, 200, "streamed by default, as Ollama does");
  t.equal(response.headers.get("content-type"), "application/x-ndjson");
  const text = await response.text();
  t.ok(text.endsWith("\n"), "every line ends in a newline");
  const lines = text
    .trimEnd()
    .split("\n")
    .map(
      (line) => JSON.parse(line) as { message: { role: string; content: string }; done: boolean; eval_count?: number },
    );
  t.ok(lines.length >= 3, "several lines");
  t.ok(lines.slice(0, -1).every((line) => !line.done && line.message.role === "assistant"));
  t.match(lines.at(-1), { done: true, done_reason: "stop", eval_count: answer.eval_count, message: { content: "" } });
  t.equal(lines.map((line) => line.message.content).join(""), answer.message.content);
});

t.test("completions: plain and streamed", async (t) => {
  const { post } = await startModel(t);
  const response = await post("/v1/completions", { model: "demo", prompt: "Once upon", max_tokens: 5 });
  t.equal(response.status, 200);
  t.equal(response.headers.get("x-demo-pool"), "light");
  t.match(await response.json(), {
    object: "text_completion",
    choices: [{ index: 0, text: String, finish_reason: "stop" }],
    usage: { prompt_tokens: 3 },
  });
  const streamed = await post("/v1/completions", { prompt: "Once upon", stream: true });
  t.match(streamed.headers.get("content-type"), /^text\/event-stream/);
  const data = sseData(await streamed.text());
  t.equal(data.at(-1), "[DONE]");
  t.match(JSON.parse(data[0] ?? "{}"), { object: "text_completion", choices: [{ index: 0, text: String }] });
});

t.test("embeddings: one vector per input, deterministic", async (t) => {
  const { post } = await startModel(t);
  const embed = async (input: unknown) =>
    (await (await post("/v1/embeddings", { model: "e", input })).json()) as {
      object: string;
      data: { object: string; index: number; embedding: number[] }[];
    };
  const batch = await embed(["first", "second", "third"]);
  t.equal(batch.object, "list");
  t.same(
    batch.data.map((item) => [item.object, item.index]),
    [
      ["embedding", 0],
      ["embedding", 1],
      ["embedding", 2],
    ],
  );
  for (const item of batch.data) t.equal(item.embedding.length, 8, "the catalogue's dimension");
  const single = await embed("second");
  t.same(single.data[0]?.embedding, batch.data[1]?.embedding, "same text, same vector");
});

t.test("predict: catalogue output, 404 for an unknown task or variant", async (t) => {
  const { post } = await startModel(t);
  const ok = await post("/v1/predict/sentiment", { text: "lovely" });
  t.equal(ok.status, 200);
  t.equal(ok.headers.get("x-model-version"), "v1");
  t.same(await ok.json(), renderOutput("sentiment", "v1", { text: "lovely" }));

  const unknownTask = await post("/v1/predict/no-such-task", {});
  t.equal(unknownTask.status, 404);
  t.match(await unknownTask.json(), { error: { message: /no-such-task/ } });
  const unknownVariant = await post("/v1/predict/sentiment", {}, { "x-demo-variant": "no-such-break" });
  t.equal(unknownVariant.status, 404);
});

t.test("KServe v2 infer echoes an FP32 tensor with the first input's shape", async (t) => {
  const { post } = await startModel(t, { version: "7" });
  const response = await post("/v2/models/resnet/infer", {
    inputs: [{ name: "input0", datatype: "FP32", shape: [1, 3], data: [0.5, 1.5, 2.5] }],
  });
  t.equal(response.status, 200);
  t.same(await response.json(), {
    model_name: "resnet",
    model_version: "7",
    outputs: [{ name: "output0", datatype: "FP32", shape: [1, 3], data: [0.5, 1.5, 2.5] }],
  });
});

t.test("bad requests: malformed JSON 400, unknown path 404, wrong method 405, oversized 413", async (t) => {
  const { post, url } = await startModel(t, { maxBodyBytes: 1024 });
  const malformed = await post("/v1/chat/completions", "{not json");
  t.equal(malformed.status, 400);
  t.match(await malformed.json(), { error: { message: /not valid JSON/ } });
  const unknown = await post("/v1/unknown", {});
  t.equal(unknown.status, 404);
  t.match(await unknown.json(), { error: { type: "not_found" } });
  const wrongMethod = await fetch(`${url}/v1/embeddings`);
  t.equal(wrongMethod.status, 405);
  t.equal(wrongMethod.headers.get("allow"), "POST");
  const oversized = await post("/v1/embeddings", { input: "x".repeat(2048) });
  t.equal(oversized.status, 413);
  const badHeader = await post("/v1/embeddings", { input: "x" }, { "x-demo-latency-ms": "soon" });
  t.equal(badHeader.status, 400);
});

t.test("control plane: stats, recorded requests, reset", async (t) => {
  const { post, control } = await startModel(t, { version: "v3" });
  await post("/v1/embeddings", { input: "a" }, { "x-guard-route": "light" });
  await post("/v1/embeddings", { input: "b" });
  await post("/v1/predict/sentiment", {});
  await post("/nowhere", {});

  const stats = await control<DemoStats>("stats");
  t.match(stats, {
    pool: "light",
    version: "v3",
    variant: "v1",
    served: 3,
    byPath: { "/v1/embeddings": 2, "/v1/predict/sentiment": 1 },
    byStatus: { "200": 3 },
    inFlight: 0,
    maxInFlight: 1,
    streamsCompleted: 0,
    streamsCancelled: 0,
  });

  const requests = await control<RecordedRequest[]>("requests");
  t.equal(requests.length, 4, "model-side requests only, unknown paths included, control plane excluded");
  t.match(requests[0], {
    method: "POST",
    path: "/v1/embeddings",
    headers: { "x-guard-route": "light" },
    bodyBytes: JSON.stringify({ input: "a" }).length,
  });
  t.equal(requests[3]?.path, "/nowhere");

  const afterReset = await control<DemoStats>("reset", {});
  t.match(afterReset, {
    served: 0,
    byPath: {},
    byStatus: {},
    maxInFlight: 0,
    streamsCompleted: 0,
    streamsCancelled: 0,
  });
  t.same(await control("requests"), []);
});

t.test("control plane: an invalid config patch is refused and changes nothing", async (t) => {
  const { model, url } = await startModel(t);
  const refused = await fetch(`${url}/__demo/config`, {
    method: "POST",
    body: JSON.stringify({ capacity: -1, variant: "x" }),
  });
  t.equal(refused.status, 400);
  t.match(await refused.json(), { error: { message: /capacity/ } });
  const unknownKey = await fetch(`${url}/__demo/config`, { method: "POST", body: JSON.stringify({ pool: "heavy" }) });
  t.equal(unknownKey.status, 400, "identity is not patchable");
  t.match(model.settings(), { variant: "v1", capacity: 0, pool: "light" });
  t.match(model.configure({ errorRate: 2 }), { ok: false, error: /errorRate/ });
  t.match(model.configure({ baseLatencyMs: 5 }), { ok: true, settings: { baseLatencyMs: 5, variant: "v1" } });
});

t.test("x-demo-status forces an error status with a JSON body", async (t) => {
  const { post } = await startModel(t);
  const forced = await post("/v1/chat/completions", chatRequest, { "x-demo-status": "500" });
  t.equal(forced.status, 500);
  t.equal(forced.headers.get("x-model-version"), "v1");
  t.match(await forced.json(), { error: { message: /500/ } });
  const invalid = await post("/v1/chat/completions", chatRequest, { "x-demo-status": "200" });
  t.equal(invalid.status, 400);
});

t.test("errorRate fails a seeded, repeatable subset of requests with 503", async (t) => {
  const statuses = async (model: Awaited<ReturnType<typeof startModel>>): Promise<number[]> => {
    const result: number[] = [];
    for (let i = 0; i < 20; i++) {
      const response = await model.post("/v1/embeddings", { input: `item ${i}` });
      await response.arrayBuffer();
      result.push(response.status);
    }
    return result;
  };
  const first = await startModel(t, { errorRate: 0.5, seed: 7 });
  const second = await startModel(t, { errorRate: 0.5, seed: 7 });
  const run = await statuses(first);
  t.ok(run.includes(200) && run.includes(503), `both outcomes occur: ${run.join(",")}`);
  t.same(await statuses(second), run, "same seed, same failures");
  await first.control("reset", {});
  t.same(await statuses(first), run, "reset restarts the sequence");
  await first.control("config", { seed: 8 });
  t.notSame(await statuses(first), run, "another seed fails other requests");
});

t.test("etaJitterMinutes moves eta_minutes from answer to answer, in range; other fields stay", async (t) => {
  const minutes = async (model: Awaited<ReturnType<typeof startModel>>): Promise<number[]> => {
    const result: number[] = [];
    for (let i = 0; i < 40; i++) {
      const body = (await (await model.post("/v1/predict/eta", { order: "same" })).json()) as { eta_minutes: number };
      result.push(body.eta_minutes);
    }
    return result;
  };
  const steady = await minutes(await startModel(t));
  t.equal(new Set(steady).size, 1, "without jitter, one request has one answer");
  const base = steady[0] ?? 0;
  const jittered = await startModel(t, { etaJitterMinutes: 3, seed: 5 });
  const run = await minutes(jittered);
  t.ok(new Set(run).size > 3, `answers vary: ${[...new Set(run)].sort().join(",")}`);
  t.ok(
    run.every((value) => Math.abs(value - base) <= 3),
    "by at most 3 minutes",
  );
  await jittered.control("reset", {});
  t.same(await minutes(jittered), run, "seeded: reset repeats the sequence");
  const sentiment = await (await jittered.post("/v1/predict/sentiment", { text: "great" })).json();
  t.same(sentiment, renderOutput("sentiment", "v1", { text: "great" }), "other tasks are untouched");
});

t.test("x-demo-reset drops the connection mid-response; the server keeps serving", async (t) => {
  const { post, control } = await startModel(t);
  const response = await post("/v1/embeddings", { input: "x" }, { "x-demo-reset": "1" });
  t.equal(response.status, 200, "headers arrive first");
  await t.rejects(response.text(), "the body is cut off");
  const streamed = await post("/v1/chat/completions", { ...chatRequest, stream: true }, { "x-demo-reset": "1" });
  await t.rejects(streamed.text(), "a stream is cut off too");
  const after = await post("/v1/embeddings", { input: "x" });
  t.equal(after.status, 200);
  t.match(await control<DemoStats>("stats"), { byStatus: { reset: 2, "200": 1 } });
});

/** Polls stats until `ready` holds; the server is local, so this settles within milliseconds. */
async function waitForStats(
  control: <T>(path: string) => Promise<T>,
  ready: (stats: DemoStats) => boolean,
): Promise<void> {
  for (;;) {
    if (ready(await control<DemoStats>("stats"))) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

t.test("capacity 1 serves requests one at a time in arrival order", async (t) => {
  const { post, control } = await startModel(t, { capacity: 1 });
  const finished: string[] = [];
  const slow = post("/v1/embeddings", { input: "slow" }, { "x-demo-latency-ms": "300" }).then(async (response) => {
    await response.arrayBuffer();
    finished.push("slow");
  });
  await waitForStats(control, (stats) => stats.active === 1);
  const quick = post("/v1/embeddings", { input: "quick" }, { "x-demo-latency-ms": "10" }).then(async (response) => {
    await response.arrayBuffer();
    finished.push("quick");
  });
  await Promise.all([slow, quick]);
  t.same(finished, ["slow", "quick"], "the short request waited for the slot");
  t.match(await control<DemoStats>("stats"), { maxInFlight: 2, maxActive: 1, served: 2, waiting: 0 });
});

t.test("without a capacity limit a short request overtakes a long one", async (t) => {
  const { post, control } = await startModel(t);
  const finished: string[] = [];
  const slow = post("/v1/embeddings", { input: "slow" }, { "x-demo-latency-ms": "300" }).then(async (response) => {
    await response.arrayBuffer();
    finished.push("slow");
  });
  await waitForStats(control, (stats) => stats.active === 1);
  await post("/v1/embeddings", { input: "quick" }, { "x-demo-latency-ms": "10" }).then(async (response) => {
    await response.arrayBuffer();
    finished.push("quick");
  });
  await slow;
  t.same(finished, ["quick", "slow"]);
  t.match(await control<DemoStats>("stats"), { maxActive: 2 });
});

t.test("a client that gives up frees its batch slot for the next request", async (t) => {
  const { url, post, control } = await startModel(t, { capacity: 1 });
  const giveUp = new AbortController();
  const stuck = fetch(`${url}/v1/embeddings`, {
    method: "POST",
    headers: { "x-demo-latency-ms": "60000" },
    body: JSON.stringify({ input: "stuck" }),
    signal: giveUp.signal,
  });
  await waitForStats(control, (stats) => stats.active === 1);
  giveUp.abort();
  await t.rejects(stuck);
  // Had the slot stayed taken, this would wait the full minute and time the test out.
  const next = await post("/v1/embeddings", { input: "next" });
  t.equal(next.status, 200);
  t.match(await control<DemoStats>("stats"), { abandoned: 1, served: 1, maxActive: 1 });
});

t.test("wire layout and encoding: pretty, reordered keys, gzip; the same value each time", async (t) => {
  const { url, post } = await startModel(t);
  const body = { text: "great" };
  const plain = await (await post("/v1/predict/sentiment", body)).text();
  const pretty = await (await post("/v1/predict/sentiment", body, { "x-demo-layout": "pretty" })).text();
  t.equal(pretty, JSON.stringify(JSON.parse(plain), null, 2));
  const reordered = await (await post("/v1/predict/sentiment", body, { "x-demo-layout": "reordered" })).text();
  t.same(JSON.parse(reordered), JSON.parse(plain));
  t.same(Object.keys(JSON.parse(reordered) as object), Object.keys(JSON.parse(plain) as object).reverse());
  // node:http does not decompress, so the raw bytes show the coding.
  const raw = await new Promise<{ encoding: string | undefined; bytes: Buffer }>((resolve, reject) => {
    const req = request(
      `${url}/v1/predict/sentiment`,
      { method: "POST", headers: { "content-type": "application/json", "x-demo-encoding": "gzip" } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ encoding: res.headers["content-encoding"], bytes: Buffer.concat(chunks) }));
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
  t.equal(raw.encoding, "gzip");
  t.equal(gunzipSync(raw.bytes).toString("utf8"), plain);
  t.equal((await post("/v1/predict/sentiment", body, { "x-demo-layout": "yaml" })).status, 400);
  t.equal((await post("/v1/predict/sentiment", body, { "x-demo-encoding": "br" })).status, 400);
});

t.test("embeddings: every catalogue variant reaches the wire as is, whatever its JSON type", async (t) => {
  const { post } = await startModel(t);
  for (const variant of ["base64_encoded", "wrapped_in_object", "null_component", "unit_bounds"]) {
    const response = (await (
      await post("/v1/embeddings", { input: "alpha" }, { "x-demo-variant": variant })
    ).json()) as {
      data: { embedding: unknown }[];
    };
    t.same(response.data[0]?.embedding, renderOutput("embedding", variant, { input: "alpha" }), variant);
  }
  const otherTask = (await (
    await post("/v1/embeddings", { input: "alpha" }, { "x-demo-variant": "score_rescaled" })
  ).json()) as {
    data: { embedding: unknown[] }[];
  };
  t.equal(otherTask.data[0]?.embedding.length, 8, "a variant of another task keeps a stable vector");
});

/** One SSE event as a client saw it: its name, data payload and when its last byte arrived (ms after the request was sent). */
interface TimedEvent {
  readonly event?: string;
  readonly data: string;
  readonly at: number;
}

/** An SSE block's `event:` name (if any) and its `data:` lines joined. */
function parseBlock(block: string): { event?: string; data: string } {
  const lines = block.split("\n");
  const event = lines.find((line) => line.startsWith("event: "))?.slice("event: ".length);
  const data = lines
    .filter((line) => line.startsWith("data: "))
    .map((line) => line.slice("data: ".length))
    .join("\n");
  return event === undefined ? { data } : { event, data };
}

/**
 * POSTs with a real HTTP client and timestamps the headers and every SSE event as they arrive.
 * `cutAfter` destroys the request once that many events have arrived (a client going away).
 */
function timedStream(
  url: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
  cutAfter = Infinity,
): Promise<{ status: number; headersAt: number; events: TimedEvent[]; raw: string }> {
  return new Promise((resolve, reject) => {
    const sentAt = performance.now();
    const events: TimedEvent[] = [];
    let raw = "";
    let pending = "";
    const req = request(
      `${url}${path}`,
      { method: "POST", headers: { "content-type": "application/json", ...headers } },
      (res) => {
        const headersAt = performance.now() - sentAt;
        const done = (): void => resolve({ status: res.statusCode ?? 0, headersAt, events, raw });
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          const at = performance.now() - sentAt;
          raw += chunk;
          pending += chunk;
          for (let end = pending.indexOf("\n\n"); end >= 0; end = pending.indexOf("\n\n")) {
            events.push({ ...parseBlock(pending.slice(0, end)), at });
            pending = pending.slice(end + 2);
          }
          if (events.length >= cutAfter) {
            req.destroy();
            done();
          }
        });
        res.on("end", done);
        // Once settled (the client left on purpose), a later error changes nothing.
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

/** The event payloads without the per-response id and timestamp, to compare two responses. */
function withoutIdentity(events: readonly TimedEvent[]): unknown[] {
  return events.map((event) => {
    if (event.data === "[DONE]") return event.data;
    const { id: _id, created: _created, ...rest } = JSON.parse(event.data) as Record<string, unknown>;
    return rest;
  });
}

const streamRequest = { ...chatRequest, stream: true, max_tokens: 24 };

t.test("unpaced by default: the whole stream in one go, framed as before, counted as completed", async (t) => {
  const { url, control } = await startModel(t);
  const result = await timedStream(url, "/v1/chat/completions", streamRequest);
  t.equal(result.status, 200);
  const first = JSON.parse(result.events[0]?.data ?? "{}") as { created: number };
  const expected = answer({ kind: "chat" }, streamRequest, {
    variant: "v1",
    version: "v1",
    task: undefined,
    fence: false,
    responseId: "demo-1",
    createdSeconds: first.created,
  });
  if (expected.kind !== "stream") throw new Error("expected a stream");
  const frames = [...expected.events.map((event) => `data: ${JSON.stringify(event)}\n\n`), "data: [DONE]\n\n"];
  t.equal(result.raw, frames.join(""), "byte for byte the frames of the answer");
  t.match(await control<DemoStats>("stats"), { streamsCompleted: 1, streamsCancelled: 0, inFlight: 0 });
});

t.test("paced stream: headers at once, then events spread by firstTokenMs and interTokenMs", async (t) => {
  const firstTokenMs = 250;
  const interTokenMs = 25;
  const { url, control } = await startModel(t, { firstTokenMs, interTokenMs });
  const paced = await timedStream(url, "/v1/chat/completions", streamRequest);
  t.equal(paced.status, 200);
  const events = paced.events;
  t.equal(events.at(-1)?.data, "[DONE]");
  t.ok(events.length >= 6, `${events.length} events`);
  const firstAt = events[0]?.at ?? 0;
  const lastAt = events.at(-1)?.at ?? 0;
  t.ok(
    paced.headersAt < firstAt,
    `headers (${paced.headersAt.toFixed(1)} ms) before the first event (${firstAt.toFixed(1)} ms)`,
  );
  t.ok(firstAt >= 0.6 * firstTokenMs, `first event after ${firstAt.toFixed(1)} ms`);
  // [DONE] comes with the last JSON event, so n events (with [DONE]) span n − 2 gaps.
  const expectedSpread = (events.length - 2) * interTokenMs;
  t.ok(
    lastAt - firstAt >= 0.6 * expectedSpread,
    `spread ${(lastAt - firstAt).toFixed(1)} ms, at least 60 % of ${expectedSpread} ms`,
  );
  t.ok(new Set(events.map((event) => event.at)).size >= 3, "not one burst");

  const unpaced = await timedStream(url, "/v1/chat/completions", streamRequest, {
    "x-demo-first-token-ms": "0",
    "x-demo-inter-token-ms": "0",
  });
  t.same(withoutIdentity(paced.events), withoutIdentity(unpaced.events), "pacing changes the timing only");
  t.ok((unpaced.events.at(-1)?.at ?? 0) < lastAt, "headers override the settings per request");
  t.match(await control<DemoStats>("stats"), { streamsCompleted: 2, streamsCancelled: 0, inFlight: 0 });
});

t.test("paced completions stream and pacing set per request by headers", async (t) => {
  const { url, control } = await startModel(t);
  const interTokenMs = 20;
  const result = await timedStream(
    url,
    "/v1/completions",
    { prompt: "Once upon", stream: true, max_tokens: 24 },
    { "x-demo-first-token-ms": "30", "x-demo-inter-token-ms": String(interTokenMs) },
  );
  const events = result.events;
  t.equal(events.at(-1)?.data, "[DONE]");
  t.match(JSON.parse(events[0]?.data ?? "{}"), { object: "text_completion" });
  const expectedSpread = (events.length - 2) * interTokenMs;
  const spread = (events.at(-1)?.at ?? 0) - (events[0]?.at ?? 0);
  t.ok(spread >= 0.6 * expectedSpread, `spread ${spread.toFixed(1)} ms, at least 60 % of ${expectedSpread} ms`);
  t.match(await control<DemoStats>("stats"), { streamsCompleted: 1 });

  for (const [name, value] of [
    ["x-demo-first-token-ms", "-1"],
    ["x-demo-inter-token-ms", "soon"],
    ["x-demo-inter-token-ms", "600001"],
  ] as const) {
    const refused = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { [name]: value },
      body: JSON.stringify({ prompt: "x", stream: true }),
    });
    t.equal(refused.status, 400, `${name}: ${value}`);
    t.match(await refused.json(), { error: { message: new RegExp(`^${name} must be a number of milliseconds`) } });
  }
});

t.test("pacing knobs: library options, /__demo/config patch, range checks", async (t) => {
  const { model, control } = await startModel(t, { firstTokenMs: 150, interTokenMs: 30 });
  t.match(model.settings(), { firstTokenMs: 150, interTokenMs: 30 });
  t.match(await control("config", { interTokenMs: 5 }), { firstTokenMs: 150, interTokenMs: 5 });
  t.match(model.configure({ firstTokenMs: -1 }), { ok: false, error: /firstTokenMs/ });
  t.match(model.configure({ interTokenMs: 600_001 }), { ok: false, error: /interTokenMs/ });
  t.match(createDemoModel().settings(), { firstTokenMs: 0, interTokenMs: 0 });
});

/** The real clock, counting the timers scheduled and those still pending. */
function countingClock() {
  let scheduled = 0;
  const pending = new Set<object>();
  const clock: BatcherClock = {
    now: realClock.now,
    schedule(delayMs, fn) {
      scheduled++;
      const timer = {};
      pending.add(timer);
      const cancel = realClock.schedule(delayMs, () => {
        pending.delete(timer);
        fn();
      });
      return () => {
        pending.delete(timer);
        cancel();
      };
    },
  };
  return { clock, scheduled: () => scheduled, pending: () => pending.size };
}

t.test("a client that leaves mid-stream: the demo stops writing, drops its timer, counts it", async (t) => {
  const counting = countingClock();
  const interTokenMs = 30;
  const { url, post, control } = await startModel(t, { interTokenMs }, counting.clock);
  // About 130 events: over 4 s of stream if it were written to the end.
  const cut = await timedStream(url, "/v1/chat/completions", { ...streamRequest, max_tokens: 400 }, {}, 3);
  t.ok(cut.events.length >= 3 && cut.events.length < 20, `left after ${cut.events.length} events`);
  await waitForStats(control, (stats) => stats.streamsCancelled === 1 && stats.inFlight === 0);
  t.equal(counting.pending(), 0, "no timer left behind");
  const scheduledAtCancel = counting.scheduled();
  await new Promise((resolve) => setTimeout(resolve, 5 * interTokenMs));
  t.equal(counting.scheduled(), scheduledAtCancel, "nothing more scheduled: writing stopped");
  t.match(await control<DemoStats>("stats"), {
    streamsCancelled: 1,
    streamsCompleted: 0,
    byStatus: { "200": 1 },
    abandoned: 0,
  });

  const next = await post("/v1/chat/completions", { ...chatRequest, stream: true });
  t.equal(sseData(await next.text()).at(-1), "[DONE]", "the server keeps serving");
  t.match(await control<DemoStats>("stats"), { streamsCancelled: 1, streamsCompleted: 1 });
});

t.test("closing the model ends a paced stream in progress and leaves no timer", async (t) => {
  const counting = countingClock();
  const model = createDemoModel({ interTokenMs: 50 }, counting.clock);
  const { url } = await model.listen(0, "127.0.0.1");
  const stream = timedStream(url, "/v1/chat/completions", { ...streamRequest, max_tokens: 400 }).catch(
    (error: Error) => error,
  );
  for (;;) {
    if (model.stats().inFlight === 1 && counting.pending() === 1) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await model.close();
  t.ok(await stream, "the client saw the stream end");
  t.equal(counting.pending(), 0);
  t.match(model.stats(), { streamsCancelled: 1, inFlight: 0 });
});

t.test("the mid-stream break streams its conforming fields before the violating value", async (t) => {
  const { url } = await startModel(t, { interTokenMs: 5 });
  const result = await timedStream(url, "/v1/chat/completions", streamRequest, {
    "x-demo-task": "chat_structured",
    "x-demo-variant": "empty_summary",
  });
  const contents = result.events
    .filter((event) => event.data !== "[DONE]")
    .map(
      (event) =>
        (JSON.parse(event.data) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? "",
    );
  const whole = contents.join("");
  t.same(JSON.parse(whole), renderOutput("chat_structured", "empty_summary", streamRequest));
  const violation = whole.indexOf('"summary":""');
  t.ok(violation > 0, "the violating value is in the content");
  // The event whose content completes the violating value, and what was delivered before it.
  let delivered = 0;
  let at = 0;
  while (at < contents.length && delivered + (contents[at]?.length ?? 0) < violation + '"summary":""'.length) {
    delivered += contents[at]?.length ?? 0;
    at++;
  }
  const before = whole.slice(0, delivered);
  t.match(before, /^\{"category":"technical","priority":\d,"tags":\["bug"\],/, "conforming fields first");
  t.ok(at < contents.length - 1, "more content (needs_human) follows the violating value");
});

const responsesRequest = { model: "demo-llm", input: "How late is my order?", max_output_tokens: 24, stream: true };

t.test("responses: JSON unstreamed; streamed, typed events named by their type and no [DONE]", async (t) => {
  const { url, post, control } = await startModel(t);
  const whole = await post("/v1/responses", { ...responsesRequest, stream: false });
  t.equal(whole.status, 200);
  t.match(whole.headers.get("content-type"), /^application\/json/);
  const body = (await whole.json()) as { object: string; status: string; output: { content: { text: string }[] }[] };
  t.match(body, { object: "response", status: "completed", model: "demo-llm" });

  const streamed = await timedStream(url, "/v1/responses", responsesRequest);
  t.equal(streamed.status, 200);
  const events = streamed.events.map((event) => ({
    ...event,
    json: JSON.parse(event.data) as Record<string, unknown>,
  }));
  t.ok(
    events.every((event) => event.event === event.json.type),
    "every event named by its type",
  );
  t.notOk(streamed.raw.includes("[DONE]"), "no [DONE]: response.completed ends the stream");
  t.equal(events.at(-1)?.event, "response.completed");
  const text = events
    .filter((event) => event.event === "response.output_text.delta")
    .map((event) => event.json.delta)
    .join("");
  t.equal(text, body.output[0]?.content[0]?.text, "the deltas add up to the unstreamed text");
  t.match(await control<DemoStats>("stats"), { byPath: { "/v1/responses": 2 }, streamsCompleted: 1 });

  const cut = await post("/v1/responses", responsesRequest, { "x-demo-reset": "1" });
  await t.rejects(cut.text(), "a typed stream is cut off too");
});

t.test("responses stream: unpaced in one go, byte for byte the answer's typed frames", async (t) => {
  const { url, control } = await startModel(t);
  const result = await timedStream(url, "/v1/responses", responsesRequest);
  const created = JSON.parse(result.events[0]?.data ?? "{}") as { response: { created_at: number } };
  const expected = answer({ kind: "responses" }, responsesRequest, {
    variant: "v1",
    version: "v1",
    task: undefined,
    fence: false,
    responseId: "demo-1",
    createdSeconds: created.response.created_at,
  });
  if (expected.kind !== "stream") throw new Error("expected a stream");
  const frames = expected.events.map((event) => {
    const type = (event as { type: string }).type;
    return `event: ${type}\ndata: ${JSON.stringify(event)}\n\n`;
  });
  t.equal(result.raw, frames.join(""));
  t.match(await control<DemoStats>("stats"), { streamsCompleted: 1, streamsCancelled: 0, inFlight: 0 });
});

t.test("responses stream: paced like chat, by the settings and per request by the headers", async (t) => {
  const firstTokenMs = 200;
  const interTokenMs = 20;
  const { url, control } = await startModel(t, { firstTokenMs, interTokenMs });
  const paced = await timedStream(url, "/v1/responses", responsesRequest);
  const events = paced.events;
  t.ok(events.length >= 12, `${events.length} events`);
  const firstAt = events[0]?.at ?? 0;
  const lastAt = events.at(-1)?.at ?? 0;
  t.ok(paced.headersAt < firstAt, "headers before the first event");
  t.ok(firstAt >= 0.6 * firstTokenMs, `first event after ${firstAt.toFixed(1)} ms`);
  // No [DONE] riding with the last event: n events span n − 1 gaps.
  const expectedSpread = (events.length - 1) * interTokenMs;
  t.ok(
    lastAt - firstAt >= 0.6 * expectedSpread,
    `spread ${(lastAt - firstAt).toFixed(1)} ms, at least 60 % of ${expectedSpread} ms`,
  );
  t.ok(new Set(events.map((event) => event.at)).size >= events.length / 2, "one event per write, not a burst");

  const unpaced = await timedStream(url, "/v1/responses", responsesRequest, {
    "x-demo-first-token-ms": "0",
    "x-demo-inter-token-ms": "0",
  });
  const withoutIdentity = (timed: readonly TimedEvent[]) =>
    timed.map((event) => event.data.replace(/"(resp|msg)_demo\d+"/g, "ID").replace(/"created_at":\d+/g, ""));
  t.same(withoutIdentity(unpaced.events), withoutIdentity(events), "pacing changes the timing only");
  t.ok((unpaced.events.at(-1)?.at ?? 0) < lastAt, "headers override the settings per request");
  t.match(await control<DemoStats>("stats"), { streamsCompleted: 2, streamsCancelled: 0 });
});

t.test("responses stream: a client that leaves mid-stream is counted as cancelled", async (t) => {
  const { url, control } = await startModel(t, { interTokenMs: 30 });
  const cut = await timedStream(url, "/v1/responses", { ...responsesRequest, max_output_tokens: 400 }, {}, 3);
  t.ok(cut.events.length >= 3 && cut.events.length < 20, `left after ${cut.events.length} events`);
  await waitForStats(control, (stats) => stats.streamsCancelled === 1 && stats.inFlight === 0);
});

t.test("responses stream: x-demo-task, -variant and -version as on chat", async (t) => {
  const { url } = await startModel(t);
  const headers = { "x-demo-task": "chat_structured", "x-demo-variant": "empty_summary", "x-demo-version": "v2" };
  const request = { model: "triage-1", input: "my parcel is late", stream: true };
  const result = await timedStream(url, "/v1/responses", request, headers);
  const deltas = result.events
    .filter((event) => event.event === "response.output_text.delta")
    .map((event) => (JSON.parse(event.data) as { delta: string }).delta);
  t.same(JSON.parse(deltas.join("")), renderOutput("chat_structured", "empty_summary", request));
  const response = await fetch(`${url}/v1/responses`, {
    method: "POST",
    headers,
    body: JSON.stringify({ ...request, stream: false }),
  });
  t.equal(response.headers.get("x-model-version"), "v2");
});
