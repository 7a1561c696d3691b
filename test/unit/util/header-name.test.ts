import t from "tap";
import { headerName, headerValue } from "../../../src/util/header-name.js";

t.test("header names must be lower-case RFC 9110 tokens", async (t) => {
  for (const good of ["x-guard-priority", "authorization", "x_custom", "a1!#$%&'*+.^_`|~-"]) {
    t.ok(headerName.safeParse(good).success, good);
  }
  for (const bad of ["", "X-Guard-Priority", "x guard", "x:guard", "ü", "x-guard\n"]) {
    const parsed = headerName.safeParse(bad);
    t.notOk(parsed.success, JSON.stringify(bad));
    t.equal(parsed.error?.issues[0]?.message, "expected a lower-case HTTP header name");
  }
});

t.test("a header value from node:http: absent, single, or repeated and joined", async (t) => {
  t.equal(headerValue(undefined), undefined);
  t.equal(headerValue(""), "");
  t.equal(headerValue("gzip"), "gzip");
  t.equal(headerValue(["a", "b"]), "a, b");
  t.equal(headerValue([]), "");
});
