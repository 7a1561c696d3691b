import t from "tap";
import {
  canonicalJson,
  entryKey,
  type KeyInput,
  parseBody,
  requestDigest,
} from "../../../../src/pipeline/cache/key.js";

const bytes = (text: string) => new Uint8Array(Buffer.from(text, "utf8"));

function input(body: string, overrides: Partial<KeyInput> = {}): KeyInput {
  return {
    route: "chat",
    method: "POST",
    path: "/v1/chat/completions",
    tenant: "tenant-a",
    vary: [""],
    body: parseBody(bytes(body)),
    excludeFields: new Set(["user", "metadata"]),
    ...overrides,
  };
}

t.test("canonical JSON ignores key order at every depth", async (t) => {
  t.equal(
    canonicalJson({ b: 1, a: { y: [1, { q: 1, p: 2 }], x: null } }),
    canonicalJson({ a: { x: null, y: [1, { p: 2, q: 1 }] }, b: 1 }),
  );
  t.not(canonicalJson([1, 2]), canonicalJson([2, 1]), "array order is meaning");
});

t.test("digest ignores key order and whitespace, not values", async (t) => {
  const base = requestDigest(input('{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}]}'));
  t.equal(
    requestDigest(input('{ "messages": [{"content":"hi","role":"user"}], "temperature": 0, "model": "m" }')),
    base,
  );
  t.not(requestDigest(input('{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi!"}]}')), base);
  t.equal(
    requestDigest(input('{"model":"m","temperature":0.0,"messages":[{"role":"user","content":"hi"}]}')),
    base,
    "0.0 and 0 are one number",
  );
});

t.test("excluded fields are left out at the top level only", async (t) => {
  const base = requestDigest(input('{"model":"m","temperature":0}'));
  t.equal(requestDigest(input('{"model":"m","temperature":0,"user":"u-123","metadata":{"trace":"x"}}')), base);
  t.not(
    requestDigest(input('{"model":"m","temperature":0,"input":{"user":"u"}}')),
    requestDigest(input('{"model":"m","temperature":0,"input":{}}')),
  );
  t.not(
    requestDigest(input('{"model":"m","user":"a"}', { excludeFields: new Set() })),
    requestDigest(input('{"model":"m","user":"b"}', { excludeFields: new Set() })),
  );
});

t.test("tenant, route, method, path and vary headers each separate keys", async (t) => {
  const body = '{"temperature":0}';
  const base = requestDigest(input(body));
  t.not(requestDigest(input(body, { tenant: "tenant-b" })), base);
  t.not(requestDigest(input(body, { route: "other" })), base);
  t.not(requestDigest(input(body, { method: "PUT" })), base);
  t.not(requestDigest(input(body, { path: "/v1/other" })), base);
  t.not(requestDigest(input(body, { vary: ["gzip"] })), base);
});

t.test("a stream request and the same request unstreamed never share a key", async (t) => {
  const body = '{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}]}';
  const streamed = '{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}],"stream":true}';
  t.not(requestDigest(input(streamed, { stream: true })), requestDigest(input(body)), "body and flag differ");
  t.not(requestDigest(input(body, { stream: true })), requestDigest(input(body)), "Accept alone: the flag differs");
  t.equal(requestDigest(input(body, { stream: false })), requestDigest(input(body)), "absent is unstreamed");
  t.not(
    requestDigest(input(`${streamed.slice(0, -1)},"stream_options":{"include_usage":true}}`, { stream: true })),
    requestDigest(input(streamed, { stream: true })),
    "stream_options is part of the key",
  );
  t.equal(
    requestDigest(input("{}")),
    "xEmbmhJW_1W-3syjJzPZNEjVA2ggm6vJn-564q77wvc",
    "an unstreamed request keeps the key it had before streams were cacheable",
  );
});

t.test("fields cannot run into each other", async (t) => {
  t.not(
    requestDigest(input("{}", { route: "a", method: "BPOST" })),
    requestDigest(input("{}", { route: "ab", method: "POST" })),
  );
});

t.test("non-JSON bodies are hashed byte for byte", async (t) => {
  t.equal(parseBody(bytes("not json {")).kind, "raw");
  t.equal(parseBody(new Uint8Array(0)).kind, "raw");
  t.not(requestDigest(input("plain text")), requestDigest(input("plain  text")));
  t.equal(requestDigest(input("plain text")), requestDigest(input("plain text")));
  t.not(requestDigest(input('"1"')), requestDigest(input("1")), "JSON scalars keep their type");
});

t.test("the epoch changes the final key", async (t) => {
  const digest = requestDigest(input("{}"));
  t.not(entryKey(digest, '["0","v1"]'), entryKey(digest, '["0","v2"]'));
  t.equal(entryKey(digest, '["0","v1"]'), entryKey(digest, '["0","v1"]'));
});

t.test("a body nested deeper than canonicalisation can walk is keyed byte for byte", async (t) => {
  const deep = `{"messages":${"[".repeat(100_000)}${"]".repeat(100_000)}}`;
  t.equal(parseBody(bytes(deep)).kind, "raw");
  t.equal(requestDigest(input(deep)), requestDigest(input(deep)), "stable, and no stack overflow");
  t.equal(
    parseBody(bytes(`{"a":${"[".repeat(200)}${"]".repeat(200)}}`)).kind,
    "json",
    "ordinary nesting is still normalised",
  );
});
