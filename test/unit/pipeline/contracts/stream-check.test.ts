import t from "tap";
import { renderOutput } from "../../../../src/demo/outputs.js";
import { StreamCheck, type StreamStep } from "../../../../src/pipeline/contracts/stream-check.js";
import type { StreamFormat } from "../../../../src/streams/formats.js";
import { demoContract } from "../../contracts/fixtures.js";

const encoder = new TextEncoder();
const CONTENT = "choices[0].message.content<json>";

function chunkEvent(delta: Record<string, unknown>, finish: string | null = null): string {
  const chunk = {
    id: "c1",
    object: "chat.completion.chunk",
    created: 1,
    model: "triage-1",
    choices: [{ index: 0, delta, finish_reason: finish }],
  };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

/** A chat stream whose content is `content`, cut into pieces of `size` characters. */
function chatStream(content: string, size = 5): string {
  let out = chunkEvent({ role: "assistant", content: "" });
  for (let i = 0; i < content.length; i += size) out += chunkEvent({ content: content.slice(i, i + size) });
  return `${out}${chunkEvent({}, "stop")}data: [DONE]\n\n`;
}

/** The content the chat events in `sse` add up to. */
function contentOf(sse: string): string {
  return sse
    .split("\n\n")
    .filter((event) => event.startsWith("data: {"))
    .map(
      (event) =>
        (JSON.parse(event.slice(6)) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? "",
    )
    .join("");
}

const triage = (variant: string): string => JSON.stringify(renderOutput("chat_structured", variant, { n: 1 }));

interface Run {
  readonly out: string;
  readonly steps: StreamStep[];
  /** Bytes out after each push. */
  readonly progress: number[];
}

/** Pushes `text` in chunks of `chunkBytes`, the last with endOfStream; stops where the stage would cut. */
function run(check: StreamCheck, text: string, chunkBytes: number): Run {
  const bytes = encoder.encode(text);
  const steps: StreamStep[] = [];
  const progress: number[] = [];
  let out = "";
  for (let at = 0; at < bytes.length || at === 0; at += chunkBytes) {
    const end = at + chunkBytes >= bytes.length;
    const step = check.push(bytes.subarray(at, Math.min(bytes.length, at + chunkBytes)), end);
    steps.push(step);
    out += Buffer.from(step.bytes).toString();
    progress.push(out.length);
    const { verdict } = step;
    if (end || verdict.kind === "unverifiable" || (verdict.kind === "checked" && !verdict.result.valid)) break;
  }
  return { out, steps, progress };
}

async function chatCheck(enforcing: boolean, maxHeldBytes = 1 << 20, format: StreamFormat = "openai.chat") {
  return new StreamCheck({
    contract: await demoContract("chat_structured"),
    framing: "sse",
    format,
    enforcing,
    maxHeldBytes,
    maxTargets: 16,
  });
}

const verdicts = (steps: readonly StreamStep[]) =>
  steps.map((step) => step.verdict).filter((v) => v.kind !== "pending");

t.test("enforce, conforming: every byte goes on, in order, and the verdict comes with [DONE]", async (t) => {
  const text = chatStream(triage("v1"));
  for (const chunkBytes of [1, 7, 64, text.length]) {
    const result = run(await chatCheck(true), text, chunkBytes);
    t.equal(result.out, text, `chunks of ${chunkBytes}: byte-identical`);
    t.match(verdicts(result.steps), [{ kind: "checked", final: true, result: { valid: true } }]);
  }
  const paced = run(await chatCheck(true), text, 40);
  const released = paced.progress.filter((bytes, index) => bytes > (paced.progress[index - 1] ?? 0)).length;
  t.ok(released > 5, `bytes are released as values settle (${released} of ${paced.progress.length} pushes)`);
});

t.test("enforce: a violating value is held back; the stream stops before it", async (t) => {
  const content = triage("empty_summary");
  const text = chatStream(content);
  for (const chunkBytes of [1, 13, text.length]) {
    const result = run(await chatCheck(true), text, chunkBytes);
    const [verdict] = verdicts(result.steps);
    t.match(verdict, {
      kind: "checked",
      final: false,
      result: { valid: false, violations: [{ field: `${CONTENT}.summary`, rule: "string.min_len" }] },
    });
    t.notOk(contentOf(result.out).includes('"summary":"'), `chunks of ${chunkBytes}: no byte of the violating value`);
    t.notOk(result.out.includes("[DONE]"));
    t.ok(text.startsWith(result.out), "a prefix of the upstream's bytes, cut at an event boundary");
  }
  const whole = run(await chatCheck(true), text, 1);
  t.ok(content.startsWith(contentOf(whole.out)));
  t.ok(contentOf(whole.out).includes('"tags":["'), "the conforming members before it went out");
});

t.test("enforce: a rule that needs the whole message decides at the end, before [DONE]", async (t) => {
  const text = chatStream(triage("urgent_without_human"));
  const result = run(await chatCheck(true), text, 9);
  t.match(verdicts(result.steps), [{ kind: "checked", final: true, result: { valid: false } }]);
  t.notOk(result.out.includes("[DONE]"), "the closing event is withheld");
});

t.test("not enforcing: bytes pass at once, the final verdict still counts", async (t) => {
  const text = chatStream(triage("empty_summary"));
  const check = await chatCheck(false);
  const bytes = encoder.encode(text);
  const first = check.push(bytes.subarray(0, 100), false);
  t.equal(first.bytes.length, 100, "nothing held");
  const last = check.push(bytes.subarray(100), true);
  t.equal(Buffer.from([...first.bytes, ...last.bytes]).toString(), text);
  t.match(last.verdict, { kind: "checked", final: true, result: { valid: false } });
  t.same(check.push(encoder.encode("data: late\n\n"), true).verdict, { kind: "pending" }, "decided once");
});

t.test("generic streams: each event is a document, checked whole", async (t) => {
  const contract = await demoContract("sentiment");
  const good = 'data: {"label":"POSITIVE","score":0.9}\n\n';
  const bad = 'data: {"label":"POSITIVE","score":90}\n\n';
  const check = new StreamCheck({
    contract,
    framing: "sse",
    format: "generic",
    enforcing: true,
    maxHeldBytes: 1 << 20,
    maxTargets: 16,
  });
  t.equal(Buffer.from(check.push(encoder.encode(good), false).bytes).toString(), good, "a conforming event goes on");
  const cut = check.push(encoder.encode(bad + good), false);
  t.equal(cut.bytes.length, 0, "the violating event and everything after it are withheld");
  t.match(cut.verdict, { kind: "checked", result: { violations: [{ field: "score", rule: "double.gte_lte" }] } });

  const empty = new StreamCheck({
    contract,
    framing: "sse",
    format: "generic",
    enforcing: true,
    maxHeldBytes: 1 << 20,
    maxTargets: 16,
  });
  t.match(empty.push(encoder.encode(": heartbeat\n\n"), true).verdict, {
    kind: "checked",
    result: { valid: false, violations: [{ rule: "json.syntax" }] },
  });
  const passing = new StreamCheck({
    contract,
    framing: "sse",
    format: "generic",
    enforcing: true,
    maxHeldBytes: 1 << 20,
    maxTargets: 16,
  });
  t.match(passing.push(encoder.encode(good), true).verdict, { kind: "checked", final: true, result: { valid: true } });
});

t.test("malformed events, upstream errors and oversized streams", async (t) => {
  const malformed = run(await chatCheck(true), `${chunkEvent({ content: "" })}data: {not json\n\n`, 1000);
  t.match(verdicts(malformed.steps), [
    { kind: "checked", result: { valid: false, violations: [{ rule: "json.syntax" }] } },
  ]);

  const errorEvent = 'data: {"error":{"message":"model overloaded"}}\n\n';
  const upstream = run(await chatCheck(true), `${chunkEvent({ content: '{"cat' })}${errorEvent}`, 1000);
  t.match(verdicts(upstream.steps), [{ kind: "upstream_error", message: "model overloaded" }]);
  t.equal(upstream.out, errorEvent, "the upstream's own error reaches the client; the unverified bytes do not");

  const oversized = run(await chatCheck(true, 200), chatStream(triage("longest")), 50);
  t.match(verdicts(oversized.steps), [{ kind: "unverifiable", reason: "body.too_large" }]);
});

t.test("payloads checked only whole hold every output event until the end", async (t) => {
  const contract = await demoContract("chat_structured", {
    payload: "choices[*].message.content",
    wrapField: "summary",
  });
  const check = new StreamCheck({
    contract,
    framing: "sse",
    format: "openai.chat",
    enforcing: true,
    maxHeldBytes: 1 << 20,
    maxTargets: 16,
  });
  const text = chatStream("a plain summary");
  const bytes = encoder.encode(text);
  const early = check.push(bytes.subarray(0, bytes.length - 20), false);
  t.equal(Buffer.from(early.bytes).toString(), chunkEvent({ role: "assistant", content: "" }), "only the role event");
  const late = check.push(bytes.subarray(bytes.length - 20), true);
  t.match(late.verdict, { kind: "checked", final: true });
});

t.test("an event beyond the framer's size limit makes the stream unverifiable", async (t) => {
  const check = await chatCheck(true);
  const step = check.push(encoder.encode(`data: ${"x".repeat(1_100_000)}`), false);
  t.match(step.verdict, { kind: "unverifiable", reason: "body.too_large", detail: /event size limit/ });
  t.equal(step.bytes.length, 0);
});

t.test("a verdict the stage lets pass loses no byte: what was held comes back as withheld", async (t) => {
  const text = chatStream(triage("empty_summary"));
  const check = await chatCheck(true);
  const bytes = encoder.encode(text);
  let out = "";
  for (let at = 0; at < bytes.length; at += 17) {
    const step = check.push(bytes.subarray(at, at + 17), at + 17 >= bytes.length);
    // As the stage does when it does not cut (unverifiable: pass, a model it turns out not to bind).
    out += Buffer.from(step.bytes).toString() + Buffer.from(step.withheld).toString();
  }
  t.equal(out, text);
});

t.test("more outputs than maxTargets make the stream unverifiable", async (t) => {
  const check = new StreamCheck({
    contract: await demoContract("chat_structured"),
    framing: "sse",
    format: "openai.chat",
    enforcing: true,
    maxHeldBytes: 1 << 20,
    maxTargets: 2,
  });
  const choices = [0, 1, 2].map((index) => ({ index, delta: { content: "{" }, finish_reason: null }));
  const event = `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", created: 1, model: "m", choices })}\n\n`;
  t.match(check.push(encoder.encode(event), false).verdict, { kind: "unverifiable", detail: /more than 2 outputs/ });
});

t.test("enforce: the event that finishes the payload waits for the final verdict, and what follows it", async (t) => {
  const text = chatStream(triage("urgent_without_human"));
  const result = run(await chatCheck(true), text, 1);
  t.notOk(result.out.includes('"finish_reason":"stop"'), "the finishing chunk is withheld with the verdict");
  t.equal(contentOf(result.out), triage("urgent_without_human"), "every content delta went on");
});

t.test("an Ollama NDJSON stream: the cut holds back the line with the violating value", async (t) => {
  const contract = await demoContract("chat_structured", { payload: "message.content<json>" });
  const content = triage("empty_summary");
  const lines = [];
  for (let i = 0; i < content.length; i += 5)
    lines.push({
      model: "triage-1",
      created_at: "t",
      message: { role: "assistant", content: content.slice(i, i + 5) },
      done: false,
    });
  lines.push({
    model: "triage-1",
    created_at: "t",
    message: { role: "assistant", content: "" },
    done: true,
    eval_count: 9,
  });
  const stream = lines.map((line) => `${JSON.stringify(line)}\n`).join("");
  for (const chunkBytes of [1, 7, 64, 100_000]) {
    const check = new StreamCheck({
      contract,
      framing: "ndjson",
      format: "ollama",
      enforcing: true,
      maxHeldBytes: 1 << 20,
      maxTargets: 16,
    });
    const { out, steps } = run(check, stream, chunkBytes);
    t.match(
      steps.at(-1)?.verdict,
      { kind: "checked", final: false, result: { valid: false } },
      `chunks of ${chunkBytes}`,
    );
    const sent = out
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => (JSON.parse(line) as { message: { content: string } }).message.content)
      .join("");
    t.ok(content.startsWith(sent), "whole lines only, a prefix of the content");
    t.notOk(sent.includes('"summary":""'), "the violating value never goes on");
    t.ok(out === "" || out.endsWith("\n"), "the cut falls between lines");
  }
  const shadow = new StreamCheck({
    contract,
    framing: "ndjson",
    format: "ollama",
    enforcing: false,
    maxHeldBytes: 1 << 20,
    maxTargets: 16,
  });
  const passed = run(shadow, stream, 13);
  t.equal(passed.out, stream, "not enforcing: every byte at once");
  t.match(passed.steps.at(-1)?.verdict, { kind: "checked", final: true, result: { valid: false } });
});
