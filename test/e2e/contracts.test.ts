// Output contracts through a real Envoy 1.40: every break of the demo catalogue is caught inline,
// under enforce (a 502 guard answer, the upstream body withheld) and under shadow (body unchanged,
// verdict header); conforming traffic passes; a model-version rollout is caught; the offline
// `check` CLI judges recorded outputs. One stack per mode; breaks are chosen per request with the
// demo's x-demo-variant / x-demo-version headers.
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import t, { type Test } from "tap";
import { metricSum } from "../../bench/metrics-text.js";
import { renderOutput, TASKS } from "../../src/demo/outputs.js";
import { PROJECT_ROOT } from "../../src/devstack/envoy.js";
import type { Stack } from "../../src/devstack/stack.js";
import type { JsonValue } from "../../src/pipeline/types.js";
import { EXPECTED_BREAKS, includesExpected } from "../helpers/catalogue.js";
import { type Answer, defaultConfigWith, mapConcurrently, post, stackFor, upstreamServed } from "../helpers/e2e.js";

type JsonObject = { [key: string]: JsonValue };

interface TaskCall {
  readonly route: string;
  readonly contract: string;
  readonly path: string;
  /** The shape of the guard's answers there: OpenAI error objects on OpenAI endpoints (docs/answers.md). */
  readonly answers: "openai" | "problem";
  readonly headers: Readonly<Record<string, string>>;
  /** A request body unique to `id`, so the response cache never answers one call with another's output. */
  readonly body: (id: string) => JsonObject;
  /** The catalogue output inside a response body (what the contract's payload path selects). */
  readonly payloadOf: (response: JsonObject) => JsonValue | undefined;
  /** The catalogue output the demo renders for a request, in the form payloadOf returns it. */
  readonly expectedPayload: (variant: string, request: JsonObject) => JsonValue | undefined;
}

/** Fields that hold the time of rendering: equal outputs differ there, so comparisons skip them. */
function withoutClock(value: JsonValue | undefined): JsonValue | undefined {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
  const { computed_at: _clock, ...rest } = value;
  return rest;
}

function firstOf(value: JsonValue | undefined, key: string): JsonObject | undefined {
  const list = value !== null && typeof value === "object" && !Array.isArray(value) ? value[key] : undefined;
  const first = Array.isArray(list) ? list[0] : undefined;
  return first !== null && typeof first === "object" && !Array.isArray(first) ? first : undefined;
}

const CALLS: Readonly<Record<string, TaskCall>> = {
  sentiment: {
    route: "sentiment",
    contract: "demo.v1.Sentiment",
    path: "/v1/predict/sentiment",
    answers: "problem",
    headers: {},
    body: (id) => ({ text: `case ${id}: great service, thank you` }),
    payloadOf: (response) => response,
    expectedPayload: (variant, request) => renderOutput("sentiment", variant, request),
  },
  eta: {
    route: "eta",
    contract: "demo.v1.DeliveryEta",
    path: "/v1/predict/eta",
    answers: "problem",
    headers: {},
    body: (id) => ({ order: id, address: "Hauptstraße 5, Köln" }),
    payloadOf: (response) => withoutClock(response),
    expectedPayload: (variant, request) => withoutClock(renderOutput("eta", variant, request)),
  },
  embedding: {
    route: "embeddings",
    contract: "demo.v1.Embedding",
    path: "/v1/embeddings",
    answers: "openai",
    headers: {},
    body: (id) => ({ model: "demo-embed", input: `document ${id}` }),
    payloadOf: (response) => firstOf(response, "data")?.embedding,
    expectedPayload: (variant, request) => renderOutput("embedding", variant, { input: request.input ?? null }),
  },
  chat_structured: {
    route: "chat",
    contract: "demo.v1.TicketTriage",
    path: "/v1/chat/completions",
    answers: "openai",
    // The chat binding only checks models matching "triage*".
    headers: { "x-demo-task": "chat_structured" },
    body: (id) => ({
      model: "triage-2024",
      messages: [{ role: "user", content: `ticket ${id}: my invoice was charged twice` }],
    }),
    payloadOf: (response) => {
      const message = firstOf(response, "choices")?.message;
      return message !== null && typeof message === "object" && !Array.isArray(message) ? message.content : undefined;
    },
    expectedPayload: (variant, request) => {
      const output = renderOutput("chat_structured", variant, request);
      return typeof output === "string" ? output : JSON.stringify(output);
    },
  },
};

const BREAKS = Object.entries(TASKS).flatMap(([task, outputs]) =>
  Object.keys(outputs.breaks).map((name) => ({ task, name })),
);
const VIOLATION_KEYS = ["route", "contract", "model_version", "violation_count", "truncated", "violations"];
const ANSWER_KEYS = {
  problem: ["type", "title", "status", "detail", "code", ...VIOLATION_KEYS],
  openai: ["message", "type", "code", "param", ...VIOLATION_KEYS],
};

let sequence = 0;

interface Sent {
  readonly answer: Answer;
  readonly request: JsonObject;
}

async function send(stack: Stack, task: string, headers: Record<string, string> = {}): Promise<Sent> {
  const call = CALLS[task];
  if (call === undefined) throw new Error(`no call for ${task}`);
  const request = call.body(`${++sequence}-${task}`);
  const answer = await post(`${stack.url}${call.path}`, request, { ...call.headers, ...headers }, 20_000);
  return { answer, request };
}

function callOf(task: string): TaskCall {
  const call = CALLS[task];
  if (call === undefined) throw new Error(`no call for ${task}`);
  return call;
}

async function stackWithAction(t: Test, action: "enforce" | "shadow"): Promise<Stack> {
  const base = await defaultConfigWith({});
  const routes = (base.routes as JsonObject[]).map((route) => {
    const contract = route.contract;
    return contract === undefined || contract === null || typeof contract !== "object"
      ? route
      : { ...route, contract: { ...contract, action } };
  });
  return stackFor(t, { guardConfig: { ...base, routes } });
}

/** Conforming traffic: plain v1, edge values, unicode, other layouts, fences, gzip. */
function conformingCases(): Array<{ task: string; variant: string; headers: Record<string, string> }> {
  const cases: Array<{ task: string; variant: string; headers: Record<string, string> }> = [];
  for (const [task, outputs] of Object.entries(TASKS)) {
    for (const variant of ["v1", ...Object.keys(outputs.conformingEdges)]) {
      cases.push({ task, variant, headers: { "x-demo-variant": variant } });
    }
    for (const layout of ["pretty", "reordered"])
      cases.push({ task, variant: "v1", headers: { "x-demo-layout": layout } });
    cases.push({ task, variant: "v1", headers: { "x-demo-encoding": "gzip" } });
  }
  cases.push({ task: "chat_structured", variant: "v1", headers: { "x-demo-fence": "1" } });
  cases.push({
    task: "chat_structured",
    variant: "longest",
    headers: { "x-demo-fence": "1", "x-demo-variant": "longest", "x-demo-layout": "pretty" },
  });
  return cases;
}

function assertPasses(t: Test, sent: Sent, label: string): void {
  t.equal(sent.answer.status, 200, `${label}: ${sent.answer.text.slice(0, 300)}`);
  t.equal(sent.answer.headers.get("x-guard-contract"), "passed", label);
}

t.test("enforce: every break is withheld with a 502 guard answer, conforming traffic passes", async (t) => {
  const stack = await stackWithAction(t, "enforce");
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  const servedBefore = await upstreamServed(stack.light.url);

  const breaks = await mapConcurrently(BREAKS, 4, async ({ task, name }) => ({
    task,
    name,
    sent: await send(stack, task, { "x-demo-variant": name, "x-demo-version": "v2" }),
  }));
  for (const { task, name, sent } of breaks) {
    const { answer } = sent;
    const call = callOf(task);
    const expected = EXPECTED_BREAKS[task]?.[name];
    const label = `${task}/${name}`;
    t.equal(answer.status, 502, label);
    t.equal(
      answer.headers.get("content-type"),
      call.answers === "openai" ? "application/json" : "application/problem+json",
      label,
    );
    t.equal(answer.headers.get("x-guard-reason"), "contract.violated", label);
    t.match(
      answer.headers.get("x-guard-contract"),
      new RegExp(`^violated; rules=.*${expected?.rule.replace(/\./g, "\\.")}`),
      label,
    );
    const body = JSON.parse(answer.text) as JsonObject;
    const members = (call.answers === "openai" ? body.error : body) as JsonObject;
    if (call.answers === "openai") t.same(Object.keys(body), ["error"], label);
    t.same(
      Object.keys(members).sort(),
      [...ANSWER_KEYS[call.answers]].sort(),
      `${label}: only the answer's members, nothing of the upstream body`,
    );
    const violations = members.violations as Array<{ field: string; rule: string; message: string }>;
    t.match(
      members,
      {
        code: "contract.violated",
        route: call.route,
        contract: call.contract,
        model_version: "v2",
        violation_count: violations.length,
        truncated: false,
      },
      label,
    );
    const title = "Upstream response violates its output contract";
    if (call.answers === "openai") t.match(members, { type: "server_error", param: null }, label);
    else t.match(members, { type: "urn:inference-guard:problem:contract-violated", title, status: 502 }, label);
    // What an SDK shows: the OpenAI message, or the problem's detail.
    const shown = String(call.answers === "openai" ? members.message : members.detail);
    const noun = violations.length === 1 ? "violation" : "violations";
    const summary = `${violations.length} ${noun} of ${call.contract} from model version v2: `;
    t.ok(shown.startsWith(call.answers === "openai" ? `${title}: ${summary}` : summary), `${label}: ${shown}`);
    const first = violations[0];
    t.ok(
      first !== undefined && shown.includes(`${first.field}: ${first.message} (${first.rule})`),
      `${label}: the shown text names the first violation's field and rule`,
    );
    for (const violation of violations) {
      t.same(Object.keys(violation).sort(), ["field", "message", "rule"], label);
      t.ok(violation.message.length > 0, `${label}: ${violation.rule} has a message`);
    }
    t.ok(
      expected !== undefined && includesExpected(violations, expected),
      `${label}: ${expected?.rule} at ${expected?.field} in ${JSON.stringify(violations)}`,
    );
    t.notOk(
      answer.text.includes(JSON.stringify(call.expectedPayload(name, sent.request))),
      `${label}: the upstream's output is not in the reply`,
    );
  }
  t.equal(
    (await upstreamServed(stack.light.url)) - servedBefore,
    BREAKS.length,
    "the upstream answered every break: the guard withheld the answers",
  );

  const gzipBreak = await send(stack, "sentiment", {
    "x-demo-variant": "score_rescaled",
    "x-demo-version": "v2",
    "x-demo-encoding": "gzip",
  });
  t.equal(gzipBreak.answer.status, 502, "a gzip-compressed break is decompressed, checked and withheld");
  t.match(JSON.parse(gzipBreak.answer.text), { violations: [{ field: "score", rule: "double.gte_lte" }] });

  const conforming = conformingCases();
  const passed = await mapConcurrently(conforming, 4, async (item) => ({
    ...item,
    sent: await send(stack, item.task, item.headers),
  }));
  for (const { task, variant, headers, sent } of passed) {
    const label = `${task} ${variant} ${JSON.stringify(headers)}`;
    assertPasses(t, sent, label);
    const response = JSON.parse(sent.answer.text) as JsonObject;
    if (headers["x-demo-fence"] === undefined)
      t.same(callOf(task).payloadOf(response), callOf(task).expectedPayload(variant, sent.request), label);
    if (headers["x-demo-encoding"] === "gzip")
      t.equal(
        sent.answer.headers.get("content-encoding"),
        "gzip",
        `${label}: the client gets the body as the upstream coded it`,
      );
  }

  const otherModel = await post(
    `${stack.url}/v1/chat/completions`,
    { model: "gpt-demo", messages: [{ role: "user", content: `ticket ${++sequence}` }] },
    { "x-demo-task": "chat_structured", "x-demo-variant": "prose_not_json", "x-demo-version": "v2" },
  );
  t.equal(otherModel.status, 200, "a model outside the binding's models list is not checked");
  t.equal(otherModel.headers.get("x-guard-contract"), null);

  const metrics = await guard.metrics();
  for (const task of Object.keys(TASKS)) {
    const contract = callOf(task).contract;
    const breakCount = breakCountOf(task);
    const conformingCount = conforming.filter((item) => item.task === task).length;
    t.equal(
      metricSum(metrics, "guard_contract_checks_total", { contract, model_version: "v2", result: "violated" }),
      breakCount,
      `${contract} violated`,
    );
    t.equal(
      metricSum(metrics, "guard_contract_checks_total", { contract, model_version: "v1", result: "passed" }),
      conformingCount,
      `${contract} passed`,
    );
    for (const [name, expected] of Object.entries(EXPECTED_BREAKS[task] ?? {})) {
      t.ok(
        metricSum(metrics, "guard_contract_violations_total", { contract, model_version: "v2", rule: expected.rule }) >=
          1,
        `${task}/${name}: ${expected.rule} counted`,
      );
    }
  }
  t.equal(
    metricSum(metrics, "guard_contract_violations_total", {
      contract: "demo.v1.Embedding",
      model_version: "v2",
      rule: "json.null",
      field: "data[*].embedding[*]",
    }),
    1,
    "field labels are normalised",
  );
  t.equal(
    metricSum(metrics, "guard_contract_checks_total", { contract: "demo.v1.TicketTriage", result: "not_applicable" }),
    1,
  );
  t.equal(
    metricSum(metrics, "guard_contract_checks_total", { result: "unverifiable" }),
    0,
    "nothing was left unchecked",
  );
  t.equal(
    metricSum(metrics, "guard_replies_total", { route: "sentiment", reason: "contract.violated", status: "502" }),
    breakCountOf("sentiment"),
  );

  t.test("a model-version rollout that breaks the contract is caught", async (t) => {
    const before = await guard.metrics();
    const control = (patch: JsonObject) => post(`${stack.light.url}/__demo/config`, patch);
    t.equal((await control({ version: "v2", variant: "label_respelled" })).status, 200);
    t.teardown(async () => {
      await control({ version: "v1", variant: "v1" });
    });
    const rolled = await mapConcurrently([1, 2, 3, 4, 5], 2, () => send(stack, "sentiment"));
    for (const { answer } of rolled) {
      t.equal(answer.status, 502);
      t.match(JSON.parse(answer.text), { model_version: "v2", violations: [{ field: "label", rule: "string.in" }] });
    }
    const after = await guard.metrics();
    const violated = { contract: "demo.v1.Sentiment", model_version: "v2", result: "violated" };
    t.equal(
      metricSum(after, "guard_contract_checks_total", violated) -
        metricSum(before, "guard_contract_checks_total", violated),
      5,
    );
    const rule = { contract: "demo.v1.Sentiment", model_version: "v2", rule: "string.in", field: "label" };
    t.equal(
      metricSum(after, "guard_contract_violations_total", rule) -
        metricSum(before, "guard_contract_violations_total", rule),
      5,
    );

    t.equal((await control({ version: "v1", variant: "v1" })).status, 200);
    assertPasses(t, await send(stack, "sentiment"), "rolled back to v1");
  });

  t.test("the official OpenAI SDK shows the guard's reason, not just a status", async (t) => {
    const client = new OpenAI({ apiKey: "not-checked", baseURL: `${stack.url}/v1`, maxRetries: 0 });
    const error = await client.chat.completions
      .create(
        { model: "triage-2024", messages: [{ role: "user", content: `ticket ${++sequence}: refund twice` }] },
        {
          headers: { "x-demo-task": "chat_structured", "x-demo-variant": "category_respelled", "x-demo-version": "v2" },
        },
      )
      .then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
    if (!(error instanceof OpenAI.InternalServerError)) return t.fail(`expected a 5xx APIError, got ${error}`);
    t.equal(error.status, 502);
    t.match(
      error.message,
      /^502 Upstream response violates its output contract: 1 violation of demo\.v1\.TicketTriage from model version v2: choices\[0\]\.message\.content<json>\.category: .* \(string\.in\)$/,
    );
    t.equal(error.code, "contract.violated");
    t.equal(error.type, "server_error");
    t.match(error.error, { violations: [{ field: "choices[0].message.content<json>.category", rule: "string.in" }] });
    t.equal(error.headers.get("x-guard-reason"), "contract.violated");
  });
});

/** Breaks sent to the enforce stack per task: the catalogue, plus one gzip-compressed sentiment break. */
function breakCountOf(task: string): number {
  return Object.keys(TASKS[task]?.breaks ?? {}).length + (task === "sentiment" ? 1 : 0);
}

const recorded: { conforming: string[]; breaking: string[] } = { conforming: [], breaking: [] };

t.test("shadow: breaks pass unchanged with a verdict header", async (t) => {
  const stack = await stackWithAction(t, "shadow");
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  const breaks = await mapConcurrently(BREAKS, 4, async ({ task, name }) => ({
    task,
    name,
    sent: await send(stack, task, { "x-demo-variant": name, "x-demo-version": "v2" }),
  }));
  for (const { task, name, sent } of breaks) {
    const label = `${task}/${name}`;
    const call = callOf(task);
    const expected = EXPECTED_BREAKS[task]?.[name];
    t.equal(sent.answer.status, 200, label);
    t.equal(sent.answer.headers.get("x-model-version"), "v2", label);
    const verdict = sent.answer.headers.get("x-guard-contract") ?? "";
    t.match(verdict, /^violated; rules=[A-Za-z0-9._\-:/,]+$/, label);
    t.ok(
      verdict
        .slice("violated; rules=".length)
        .split(",")
        .includes(expected?.rule ?? "?"),
      `${label}: ${expected?.rule} in ${verdict}`,
    );
    t.same(
      call.payloadOf(JSON.parse(sent.answer.text) as JsonObject),
      call.expectedPayload(name, sent.request),
      `${label}: the body is the upstream's`,
    );
    if (task === "sentiment") recorded.breaking.push(sent.answer.text);
  }

  for (const item of conformingCases()) {
    const sent = await send(stack, item.task, item.headers);
    assertPasses(t, sent, `${item.task} ${item.variant} ${JSON.stringify(item.headers)}`);
    if (item.task === "sentiment") recorded.conforming.push(sent.answer.text);
  }

  const metrics = await guard.metrics();
  for (const [task, outputs] of Object.entries(TASKS)) {
    const contract = callOf(task).contract;
    t.equal(
      metricSum(metrics, "guard_contract_checks_total", { contract, model_version: "v2", result: "violated" }),
      Object.keys(outputs.breaks).length,
      contract,
    );
  }
  t.equal(metricSum(metrics, "guard_replies_total", { reason: "contract.violated" }), 0, "shadow never replies");
});

t.test("offline check CLI on the recorded outputs: exit 0, 1, 2", async (t) => {
  t.ok(
    recorded.conforming.length >= 4 && recorded.breaking.length === Object.keys(TASKS.sentiment?.breaks ?? {}).length,
    "outputs were recorded through Envoy",
  );
  const dir = await mkdtemp(join(tmpdir(), "guard-check-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const write = async (name: string, lines: readonly string[]): Promise<string> => {
    const file = join(dir, name);
    // Pretty-printed bodies span lines; JSONL holds one compact body per line.
    await writeFile(file, `${lines.map((text) => JSON.stringify(JSON.parse(text))).join("\n")}\n`);
    return file;
  };
  const conforming = await write("v1.jsonl", recorded.conforming);
  const mixed = await write("v2.jsonl", [...recorded.conforming.slice(0, 1), ...recorded.breaking]);

  const ok = await check(["--config", "config/default.yaml", "--contract", "sentiment", conforming]);
  t.equal(ok.code, 0, ok.stderr);
  const okLines = ok.lines();
  t.equal(okLines.length, recorded.conforming.length);
  t.ok(
    okLines.every((line, index) => line.line === index + 1 && line.valid === true),
    "every v1 line is valid",
  );

  const bad = await check(["--config", "config/default.yaml", "--contract", "sentiment", mixed]);
  t.equal(bad.code, 1, bad.stderr);
  const badLines = bad.lines();
  t.match(badLines[0], { line: 1, valid: true, violations: [] });
  const names = Object.keys(TASKS.sentiment?.breaks ?? {});
  names.forEach((name, index) => {
    const line = badLines[index + 1] as {
      valid: boolean;
      violations: Array<{ field: string; rule: string; message: string }>;
    };
    const expected = EXPECTED_BREAKS.sentiment?.[name];
    t.equal(line.valid, false, name);
    t.ok(
      expected !== undefined && includesExpected(line.violations, expected),
      `${name}: ${JSON.stringify(line.violations)}`,
    );
  });

  t.equal(
    (await check(["--config", "config/default.yaml", "--contract", "no-such-route", conforming])).code,
    2,
    "unknown contract",
  );
  t.equal((await check(["--config", "config/default.yaml", "--contract", "sentiment"])).code, 2, "no input file");
});

interface CliRun {
  readonly code: number;
  readonly stderr: string;
  lines(): JsonObject[];
}

function check(args: readonly string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(PROJECT_ROOT, "bin", "inference-guard.js"), "check", ...args],
      { cwd: PROJECT_ROOT },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({
          code,
          stderr,
          lines: () =>
            stdout
              .split("\n")
              .filter((line) => line.trim() !== "")
              .map((line) => JSON.parse(line) as JsonObject),
        });
      },
    );
  });
}
