import t from "tap";
import { allowListed, decodeEntry, encodeEntry } from "../../../../src/pipeline/cache/entry.js";

t.test("wire form round-trips status, headers, body and TTL", async (t) => {
  const body = new Uint8Array([0, 1, 2, 255, 10, 13]);
  const encoded = encodeEntry({
    ttlMs: 60_000,
    response: { status: 200, headers: { "content-type": "application/json", "x-model-version": "v1" }, body },
  });
  const decoded = decodeEntry(encoded);
  t.same(decoded?.response.headers, { "content-type": "application/json", "x-model-version": "v1" });
  t.equal(decoded?.response.status, 200);
  t.equal(decoded?.ttlMs, 60_000);
  t.same([...(decoded?.response.body ?? [])], [...body]);
  t.ok(encoded.length < body.length + 100, "compact");
});

t.test("an entry carries the model version that produced it; entries written without one still decode", async (t) => {
  const response = { status: 200, headers: {}, body: new Uint8Array([1]), modelVersion: "v7" };
  t.equal(decodeEntry(encodeEntry({ ttlMs: 1, response }))?.response.modelVersion, "v7");
  const { modelVersion: _none, ...unversioned } = response;
  t.notOk("modelVersion" in (decodeEntry(encodeEntry({ ttlMs: 1, response: unversioned }))?.response ?? {}));
  const legacy = Buffer.from(JSON.stringify([200, 1000, { "x-a": "1" }]));
  const decoded = decodeEntry(Buffer.concat([Buffer.from([1, 0, 0, 0, legacy.length]), legacy, Buffer.from("ok")]));
  t.same(decoded?.response.headers, { "x-a": "1" }, "three meta items: written before versions were recorded");
  t.equal(decoded?.response.modelVersion, undefined);
  const badVersion = Buffer.from(JSON.stringify([200, 1, {}, 5]));
  t.equal(decodeEntry(Buffer.concat([Buffer.from([1, 0, 0, 0, badVersion.length]), badVersion])), undefined);
});

t.test("anything else decodes to a miss", async (t) => {
  t.equal(decodeEntry(Buffer.alloc(0)), undefined);
  t.equal(decodeEntry(Buffer.from("plain string written by someone else")), undefined);
  const good = encodeEntry({ ttlMs: 1, response: { status: 200, headers: {}, body: new Uint8Array(0) } });
  t.equal(decodeEntry(good.subarray(0, 6)), undefined, "truncated");
  const wrongShape = Buffer.concat([Buffer.from([1, 0, 0, 0, 4]), Buffer.from('{"a"')]);
  t.equal(decodeEntry(wrongShape), undefined);
  const badHeaders = Buffer.from(JSON.stringify([200, 1, { a: 1 }]));
  t.equal(decodeEntry(Buffer.concat([Buffer.from([1, 0, 0, 0, badHeaders.length]), badHeaders])), undefined);
});

t.test("only allow-listed headers are kept", async (t) => {
  const headers = new Map([
    ["content-type", "application/json"],
    ["set-cookie", "s=1"],
    ["x-model-version", "v2"],
  ]);
  t.same(allowListed(headers, ["content-type", "x-model-version", "content-encoding"]), {
    "content-type": "application/json",
    "x-model-version": "v2",
  });
});
