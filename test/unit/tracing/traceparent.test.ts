import t from "tap";
import { parentContextOf, parseTraceparent } from "../../../src/tracing/traceparent.js";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN = "00f067aa0ba902b7";

t.test("a valid header: its ids and flags", async (t) => {
  t.same(parseTraceparent(`00-${TRACE}-${SPAN}-01`), { traceId: TRACE, spanId: SPAN, flags: 1 });
  t.same(parseTraceparent(` 00-${TRACE}-${SPAN}-00 `), { traceId: TRACE, spanId: SPAN, flags: 0 });
  t.same(parseTraceparent(`cc-${TRACE}-${SPAN}-01-extra`)?.traceId, TRACE, "a later version may add fields");
});

t.test("invalid headers are ignored, as the spec says", async (t) => {
  for (const header of [
    undefined,
    "",
    `00-${TRACE}-${SPAN}-01-extra`,
    `ff-${TRACE}-${SPAN}-01`,
    `00-${"0".repeat(32)}-${SPAN}-01`,
    `00-${TRACE}-${"0".repeat(16)}-01`,
    `00-${TRACE.toUpperCase()}-${SPAN}-01`,
    `00-${TRACE}-${SPAN}-01, 00-${TRACE}-${SPAN}-01`,
  ])
    t.equal(parseTraceparent(header), undefined, String(header));
});

t.test("the guard continues the ext_proc call's context, else the request's", async (t) => {
  const client = `00-${TRACE}-${SPAN}-01`;
  const envoySpan = `00-${TRACE}-${"1".repeat(16)}-01`;
  const headers = new Map([
    ["traceparent", client],
    ["tracestate", "vendor=1"],
  ]);
  t.same(parentContextOf({ headers, callTrace: { traceparent: envoySpan } }), { traceparent: envoySpan });
  t.same(parentContextOf({ headers }), { traceparent: client, tracestate: "vendor=1" });
  t.same(
    parentContextOf({ headers, callTrace: { traceparent: "garbage" } }),
    { traceparent: client, tracestate: "vendor=1" },
    "an unusable call context falls back to the request's",
  );
  t.equal(parentContextOf({ headers: new Map() }), undefined);
});
