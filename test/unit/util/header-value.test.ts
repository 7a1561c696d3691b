import t from "tap";
import { headerValue } from "../../../src/util/header-value.js";

t.test("a header value from node:http: absent, single, or repeated and joined", async (t) => {
  t.equal(headerValue(undefined), undefined);
  t.equal(headerValue(""), "");
  t.equal(headerValue("gzip"), "gzip");
  t.equal(headerValue(["a", "b"]), "a, b");
  t.equal(headerValue([]), "");
});
