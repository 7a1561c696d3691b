import t from "tap";
import { routeCacheSchema } from "../../../../src/pipeline/cache/config.js";
import { parseBody } from "../../../../src/pipeline/cache/key.js";
import {
  bypassFromBody,
  bypassFromHeaders,
  skipFromResponseBody,
  skipFromResponseHeaders,
  wantsStream,
} from "../../../../src/pipeline/cache/policy.js";
import type { Exchange, ResponseInfo } from "../../../../src/pipeline/types.js";

const config = routeCacheSchema.parse({ enabled: true, maxEntryBytes: 100 });
const json = (value: unknown) => parseBody(new Uint8Array(Buffer.from(JSON.stringify(value))));
const none = new Map<string, string>();
const chat = { name: "chat" };

t.test("request headers: Cache-Control bypasses, an event stream does not", async (t) => {
  t.equal(bypassFromHeaders(none), undefined);
  t.equal(bypassFromHeaders(new Map([["cache-control", "no-store"]])), "cache_control");
  t.equal(bypassFromHeaders(new Map([["cache-control", "max-age=0, No-Cache"]])), "cache_control");
  t.equal(bypassFromHeaders(new Map([["cache-control", "max-age=60"]])), undefined);
  t.equal(bypassFromHeaders(new Map([["accept", "text/event-stream"]])), undefined);
  t.equal(bypassFromHeaders(new Map([["accept", "application/json"]])), undefined);
});

t.test("request body: only deterministic requests are cacheable", async (t) => {
  t.equal(bypassFromBody(json({ temperature: 0 }), none, config), undefined);
  t.equal(bypassFromBody(json({ temperature: 0.7, seed: 42 }), none, config), undefined);
  t.equal(bypassFromBody(json({ temperature: 0.7 }), none, config), "nondeterministic");
  t.equal(
    bypassFromBody(json({}), none, config),
    "nondeterministic",
    "a model's default temperature is not known to be 0",
  );
  t.equal(bypassFromBody(json({ temperature: "0" }), none, config), "nondeterministic");
  t.equal(bypassFromBody(json({ seed: "42" }), none, config), "nondeterministic");
  t.equal(bypassFromBody(json([1, 2]), none, config), "nondeterministic");
  t.equal(bypassFromBody(parseBody(new Uint8Array(Buffer.from("raw"))), none, config), "nondeterministic");
});

t.test("request body: the opt-in header makes any request cacheable", async (t) => {
  const optIn = new Map([["x-guard-cache", "Allow"]]);
  t.equal(bypassFromBody(json({ temperature: 1 }), optIn, config), undefined);
  t.equal(bypassFromBody(parseBody(new Uint8Array(Buffer.from("raw"))), optIn, config), undefined);
  t.equal(bypassFromBody(json({ temperature: 1 }), new Map([["x-guard-cache", "yes"]]), config), "nondeterministic");
  const disabled = routeCacheSchema.parse({ optInHeader: "" });
  t.equal(bypassFromBody(json({ temperature: 1 }), optIn, disabled), "nondeterministic");
});

t.test("request body: streams are cacheable under the same determinism rules", async (t) => {
  t.equal(bypassFromBody(json({ temperature: 0, stream: true }), none, config), undefined);
  t.equal(bypassFromBody(json({ temperature: 0.7, stream: true }), none, config), "nondeterministic");
  t.equal(
    bypassFromBody(json({ temperature: 0.7, stream: true }), new Map([["x-guard-cache", "allow"]]), config),
    undefined,
  );
  t.equal(bypassFromBody(json({ temperature: 0, stream: false }), none, config), undefined);
  t.equal(bypassFromBody(json({ options: { temperature: 0 } }), none, config), undefined, "Ollama's options");
  t.equal(bypassFromBody(json({ options: { seed: 7 } }), none, config), undefined);
  t.equal(bypassFromBody(json({ options: { temperature: 0.8 } }), none, config), "nondeterministic");
});

t.test("a request asks for a stream by its body or its Accept header", async (t) => {
  t.equal(wantsStream(json({ stream: true }), none, chat), true);
  t.equal(wantsStream(json({ stream: false }), none, chat), false);
  t.equal(wantsStream(json({ stream: "true" }), none, chat), false);
  t.equal(wantsStream(json({}), new Map([["accept", "text/event-stream"]]), chat), true);
  t.equal(wantsStream(parseBody(new Uint8Array()), new Map([["accept", "Text/Event-Stream; q=1"]]), chat), true);
  t.equal(wantsStream(json({}), new Map([["accept", "application/json"]]), chat), false);
  const ollama = {
    name: "ollama",
    streaming: { ndjson: { format: "ollama" as const, contentTypes: ["application/x-ndjson"] } },
  };
  t.equal(wantsStream(json({ model: "m" }), none, ollama), true, "Ollama streams when `stream` is absent");
  t.equal(wantsStream(json({ stream: false }), new Map([["accept", "application/x-ndjson"]]), ollama), false);
  const ndjson = {
    name: "predict",
    streaming: { ndjson: { format: "generic" as const, contentTypes: ["application/jsonl"] } },
  };
  t.equal(wantsStream(json({}), new Map([["accept", "application/json, application/jsonl"]]), ndjson), true);
  t.equal(wantsStream(json({}), new Map([["accept", "application/jsonl"]]), chat), false, "undeclared: no stream type");
});

const response = (status: number, headers: Record<string, string> = {}): ResponseInfo => ({
  status,
  headers: new Map(Object.entries(headers)),
  endOfStream: false,
});

t.test("response headers: only 200, storable, of the form asked for, declared within the limit", async (t) => {
  const sse = { "content-type": "text/event-stream; charset=utf-8" };
  t.equal(
    skipFromResponseHeaders(response(200, { "content-type": "application/json" }), config, false, chat),
    undefined,
  );
  t.equal(skipFromResponseHeaders(response(500), config, false, chat), "status");
  t.equal(skipFromResponseHeaders(response(201), config, false, chat), "status");
  t.equal(
    skipFromResponseHeaders(response(200, { "cache-control": "no-store" }), config, false, chat),
    "cache_control",
  );
  t.equal(
    skipFromResponseHeaders(response(200, sse), config, false, chat),
    "stream_mismatch",
    "a stream nobody asked for",
  );
  t.equal(skipFromResponseHeaders(response(200, sse), config, true, chat), undefined);
  t.equal(
    skipFromResponseHeaders(response(200, { "content-type": "application/json" }), config, true, chat),
    "stream_mismatch",
    "JSON for a stream request",
  );
  t.equal(skipFromResponseHeaders(response(500, sse), config, true, chat), "status");
  t.equal(
    skipFromResponseHeaders(
      response(200, { ...sse, "cache-control": "no-cache, must-revalidate" }),
      config,
      true,
      chat,
    ),
    undefined,
    "every event-stream server says no-cache: on a stream it is transport convention",
  );
  t.equal(
    skipFromResponseHeaders(response(200, { ...sse, "cache-control": "no-store" }), config, true, chat),
    "cache_control",
  );
  t.equal(
    skipFromResponseHeaders(
      response(200, { "content-type": "application/json", "cache-control": "no-cache" }),
      config,
      false,
      chat,
    ),
    "cache_control",
    "on JSON it still forbids",
  );
  t.equal(
    skipFromResponseHeaders(response(200, { ...sse, "content-encoding": "gzip" }), config, true, chat),
    "incomplete",
    "an encoded stream's end cannot be read",
  );
  t.equal(
    skipFromResponseHeaders(response(200, { ...sse, "content-encoding": "identity" }), config, true, chat),
    undefined,
  );
  t.equal(skipFromResponseHeaders(response(200, { "content-length": "101" }), config, false, chat), "too_large");
  t.equal(skipFromResponseHeaders(response(200, { "content-length": "100" }), config, false, chat), undefined);
});

t.test("response body: size limit and contract verdict", async (t) => {
  const exchange = (contract?: Exchange["contract"]) =>
    ({ ...(contract === undefined ? {} : { contract }) }) as Exchange;
  t.equal(skipFromResponseBody(new Uint8Array(100), exchange(), config), undefined);
  t.equal(skipFromResponseBody(new Uint8Array(101), exchange(), config), "too_large");
  t.equal(skipFromResponseBody(new Uint8Array(1), exchange("violated"), config), "contract_violated");
  t.equal(skipFromResponseBody(new Uint8Array(1), exchange("passed"), config), undefined);
  t.equal(skipFromResponseBody(new Uint8Array(1), exchange("skipped"), config), undefined);
});
