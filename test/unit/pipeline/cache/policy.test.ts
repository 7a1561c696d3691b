import t from "tap";
import { routeCacheSchema } from "../../../../src/pipeline/cache/config.js";
import { parseBody } from "../../../../src/pipeline/cache/key.js";
import {
  bypassFromBody,
  bypassFromHeaders,
  skipFromResponseBody,
  skipFromResponseHeaders,
} from "../../../../src/pipeline/cache/policy.js";
import type { Exchange, ResponseInfo } from "../../../../src/pipeline/types.js";

const config = routeCacheSchema.parse({ enabled: true, maxEntryBytes: 100 });
const json = (value: unknown) => parseBody(new Uint8Array(Buffer.from(JSON.stringify(value))));
const none = new Map<string, string>();

t.test("request headers: Cache-Control and event streams bypass", async (t) => {
  t.equal(bypassFromHeaders(none), undefined);
  t.equal(bypassFromHeaders(new Map([["cache-control", "no-store"]])), "cache_control");
  t.equal(bypassFromHeaders(new Map([["cache-control", "max-age=0, No-Cache"]])), "cache_control");
  t.equal(bypassFromHeaders(new Map([["cache-control", "max-age=60"]])), undefined);
  t.equal(bypassFromHeaders(new Map([["accept", "text/event-stream"]])), "stream");
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

t.test("request body: the opt-in header makes any non-stream request cacheable", async (t) => {
  const optIn = new Map([["x-guard-cache", "Allow"]]);
  t.equal(bypassFromBody(json({ temperature: 1 }), optIn, config), undefined);
  t.equal(bypassFromBody(parseBody(new Uint8Array(Buffer.from("raw"))), optIn, config), undefined);
  t.equal(bypassFromBody(json({ temperature: 1 }), new Map([["x-guard-cache", "yes"]]), config), "nondeterministic");
  const disabled = routeCacheSchema.parse({ optInHeader: "" });
  t.equal(bypassFromBody(json({ temperature: 1 }), optIn, disabled), "nondeterministic");
});

t.test("request body: streams are never cached, even with opt-in", async (t) => {
  t.equal(bypassFromBody(json({ temperature: 0, stream: true }), none, config), "stream");
  t.equal(
    bypassFromBody(json({ temperature: 0, stream: true }), new Map([["x-guard-cache", "allow"]]), config),
    "stream",
  );
  t.equal(bypassFromBody(json({ temperature: 0, stream: false }), none, config), undefined);
});

const response = (status: number, headers: Record<string, string> = {}): ResponseInfo => ({
  status,
  headers: new Map(Object.entries(headers)),
  endOfStream: false,
});

t.test("response headers: only 200, storable, non-stream, declared within the limit", async (t) => {
  t.equal(skipFromResponseHeaders(response(200, { "content-type": "application/json" }), config), undefined);
  t.equal(skipFromResponseHeaders(response(500), config), "status");
  t.equal(skipFromResponseHeaders(response(201), config), "status");
  t.equal(skipFromResponseHeaders(response(200, { "cache-control": "no-store" }), config), "cache_control");
  t.equal(
    skipFromResponseHeaders(response(200, { "content-type": "text/event-stream; charset=utf-8" }), config),
    "stream",
  );
  t.equal(skipFromResponseHeaders(response(200, { "content-length": "101" }), config), "too_large");
  t.equal(skipFromResponseHeaders(response(200, { "content-length": "100" }), config), undefined);
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
