import t from "tap";
import { headerName } from "../../../src/config-kit/primitives.js";

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
