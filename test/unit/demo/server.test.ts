import { createHash } from "node:crypto";
import { request } from "node:http";
import { gunzipSync } from "node:zlib";
import t from "tap";
import { renderOutput } from "../../../src/demo/outputs.js";
import { createDemoModel, type DemoStats, type RecordedRequest } from "../../../src/demo/server.js";
import type { DemoOptions } from "../../../src/demo/settings.js";

/** All startModel needs from a test: a place to hang the server shutdown. */
type Test = Pick<typeof t, "teardown">;

/** A real demo model on an ephemeral port, closed when the test ends. */
async function startModel(t: Test, options: DemoOptions = {}) {
  const model = createDemoModel({ pool: "light", ...options });
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
  t.match(afterReset, { served: 0, byPath: {}, byStatus: {}, maxInFlight: 0 });
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
