import t from "tap";
import { streamEnd } from "../../../../src/pipeline/cache/stream-end.js";

const end = (text: string) =>
  streamEnd(new Uint8Array(Buffer.from(text, "utf8")), { framing: "sse", format: "openai.chat" });
const CHUNK = 'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n';

t.test("an OpenAI stream is complete when its last event is [DONE], dispatched", async (t) => {
  t.equal(end(`${CHUNK}data: [DONE]\n\n`), "complete");
  t.equal(end(`${CHUNK}data:[DONE]\n\n`), "complete", "the space after the colon is optional");
  t.equal(end(`${CHUNK}data: [DONE]\r\n\r\n`.replaceAll("\n\n", "\r\n\r\n")), "complete", "CRLF");
  t.equal(end(`${CHUNK}data: [DONE]\n\n`.replaceAll("\n", "\r")), "complete", "CR");
  t.equal(end(`${CHUNK}data: [DONE]\n\n: keep-alive\n\n`), "complete", "a comment after it dispatches nothing");
  t.equal(end(`: hello\n\n${CHUNK}data: [DONE]\n\n`), "complete");
});

t.test("a stream is incomplete when it stops anywhere else", async (t) => {
  t.equal(end(""), "incomplete");
  t.equal(end(CHUNK), "incomplete", "no [DONE]");
  t.equal(end(`${CHUNK}data: [DONE]\n`), "incomplete", "[DONE] never dispatched");
  t.equal(end(`${CHUNK}data: [DONE]`), "incomplete");
  t.equal(end(`${CHUNK}data: [DONE]\n\ndata: {}\n\n`), "incomplete", "something after it");
  t.equal(end(`${CHUNK}data: [DONE]\n\ndata: {"x"`), "incomplete", "a partial event after it");
  t.equal(end(`${CHUNK}data: [DONE]\ndata: more\n\n`), "incomplete", "[DONE] as one line of a longer event");
  t.equal(end(`${CHUNK}event: response.in_progress\ndata: {}\n\n`), "incomplete");
});

t.test("a Responses API stream is complete with response.completed", async (t) => {
  const completed = 'event: response.completed\ndata: {"type":"response.completed","response":{"error":null}}\n\n';
  t.equal(
    end(`event: response.output_text.delta\ndata: {"type":"response.output_text.delta"}\n\n${completed}`),
    "complete",
  );
  t.equal(
    end('data: {"type":"response.completed","response":{"error":null}}\n\n'),
    "complete",
    "named by its data alone",
  );
  t.equal(end('event: response.incomplete\ndata: {"type":"response.incomplete"}\n\n'), "incomplete");
});

t.test("an error anywhere makes it an error, [DONE] or not", async (t) => {
  t.equal(end(`${CHUNK}data: {"error":{"message":"boom"}}\n\ndata: [DONE]\n\n`), "error", "vLLM's error before [DONE]");
  t.equal(
    end(`${CHUNK}event: error\ndata: {"error":{"type":"contract_violation"}}\n\n`),
    "error",
    "the guard's own cut",
  );
  t.equal(end('event: response.failed\ndata: {"type":"response.failed"}\n\n'), "error");
  t.equal(end('data: {"type":"response.failed","response":{"error":{"code":"x"}}}\n\n'), "error");
  t.equal(end('data: {"type":"error","code":"x"}\n\n'), "error");
  t.equal(
    end('data: {"choices":[{"delta":{"content":"the \\"error\\" key"}}],"error":null}\n\ndata: [DONE]\n\n'),
    "complete",
    "an error field that is null, or the word in content, is no error",
  );
  t.equal(end('data: {"error" broken json\n\ndata: [DONE]\n\n'), "complete", "unparsable data is not judged");
});

t.test("long streams: the end is found however far back its last event starts", async (t) => {
  const deltas = CHUNK.repeat(2_000);
  t.equal(end(`${deltas}data: [DONE]\n\n`), "complete");
  t.equal(end(deltas), "incomplete");
  t.equal(end(`${deltas}data: [DONE]\n\n${": keep-alive\n\n".repeat(1_000)}`), "complete", "behind 14 KB of comments");
  const completed = `event: response.completed\ndata: ${JSON.stringify({ type: "response.completed", response: { output: "x".repeat(50_000), error: null } })}\n\n`;
  t.equal(end(`${deltas}${completed}`), "complete", "a 50 KB last event");
  t.equal(end(`${deltas}${completed.slice(0, -1)}`), "incomplete", "not dispatched");
  const failure = 'data: {"error":{"message":"boom"}}\n\n';
  t.equal(end(`${deltas}${failure}${deltas}data: [DONE]\n\n`), "error", "an error deep inside");
  t.equal(
    end(`${deltas.replaceAll("\n", "\r\n")}${failure.replaceAll("\n", "\r\n")}data: [DONE]\r\n\r\n`),
    "error",
    "CRLF",
  );
  t.equal(
    end(`${'data: {"choices":[{"delta":{"content":"an error, then more"}}]}\n\n'.repeat(500)}data: [DONE]\n\n`),
    "complete",
    "the word in content, many times",
  );
});

t.test("an Ollama NDJSON stream is complete with a done: true last line and no error line", async (t) => {
  const ollama = (text: string) =>
    streamEnd(new Uint8Array(Buffer.from(text, "utf8")), { framing: "ndjson", format: "ollama" });
  const line = '{"model":"m","message":{"content":"hi"},"done":false}\n';
  const done = '{"model":"m","message":{"content":""},"done":true,"done_reason":"stop","eval_count":1}';
  t.equal(ollama(`${line}${done}\n`), "complete");
  t.equal(ollama(`${line}${done}`), "complete", "the last line's newline is optional");
  t.equal(ollama(`${line}${done}\n\n`), "complete", "blank lines after it");
  t.equal(ollama(line), "incomplete", "no done line");
  t.equal(ollama(`${line}${done.slice(0, 20)}`), "incomplete", "the done line cut short");
  t.equal(ollama(`${line}{"error":"model runner crashed"}\n`), "error");
  t.equal(ollama(""), "incomplete");
  const generic = (text: string) =>
    streamEnd(new Uint8Array(Buffer.from(text, "utf8")), { framing: "ndjson", format: "generic" });
  t.equal(generic('{"score":1}\n{"score":2}\n'), "complete", "generic: every line a whole document");
  t.equal(generic('{"score":1}\n{"sco'), "incomplete");
  t.equal(generic('{"score":1}\n{"error":{"message":"x"}}\n'), "error");
});
