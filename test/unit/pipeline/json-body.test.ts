import t from "tap";
import { NOT_JSON, parseJsonBody } from "../../../src/pipeline/json-body.js";

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

t.test("one body is parsed once: every stage gets the same value", async (t) => {
  const body = bytes('{"model":"m","messages":[{"role":"user","content":"hi"}]}');
  const first = parseJsonBody(body);
  t.same(first, { model: "m", messages: [{ role: "user", content: "hi" }] });
  t.equal(parseJsonBody(body), first, "the same object, not a second parse");
  t.not(
    parseJsonBody(bytes('{"model":"m","messages":[{"role":"user","content":"hi"}]}')),
    first,
    "another body is parsed on its own",
  );
});

t.test("a view of part of a buffer parses only its bytes", async (t) => {
  const whole = bytes('{"a":1}BINARY');
  t.same(parseJsonBody(whole.subarray(0, 7)), { a: 1 });
});

t.test("bodies that are not JSON", async (t) => {
  t.equal(parseJsonBody(bytes("")), NOT_JSON);
  t.equal(parseJsonBody(bytes('{"a":')), NOT_JSON);
  t.equal(parseJsonBody(Uint8Array.of(0xff, 0xfe)), NOT_JSON);
  t.equal(parseJsonBody(bytes('"\u00e9"')), "\u00e9", "valid UTF-8 decodes");
});
