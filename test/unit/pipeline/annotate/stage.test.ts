import t from "tap";
import { createAnnotateStage } from "../../../../src/pipeline/annotate/stage.js";
import type { Exchange, ResponseInfo, Step } from "../../../../src/pipeline/types.js";

function exchange(route: string): Exchange {
  return {
    request: {
      method: "POST",
      path: "/v1/chat/completions",
      authority: "guard.test",
      headers: new Map(),
      requestId: "r-1",
      endOfStream: false,
    },
    route: { name: route },
    startedAt: 0,
    tenant: "anonymous",
    priority: "standard",
    extendDeadline: () => {},
  };
}

const RESPONSE: ResponseInfo = { status: 200, headers: new Map(), endOfStream: false };

t.test("both headers: the route's name goes upstream and back to the client", async (t) => {
  const stage = createAnnotateStage({ requestHeader: "x-guard-route", responseHeader: "x-guard-route-seen" });
  const run = stage.start(exchange("chat"));
  t.same(await run?.onRequestHeaders?.(), {
    type: "continue",
    edits: { setHeaders: { "x-guard-route": "chat" } },
    needs: { responseHeaders: true },
  } satisfies Step);
  t.same(await run?.onResponseHeaders?.(RESPONSE), {
    type: "continue",
    edits: { setHeaders: { "x-guard-route-seen": "chat" } },
  } satisfies Step);
});

t.test("request header only: no response headers asked for, none set", async (t) => {
  const run = createAnnotateStage({ requestHeader: "x-guard-route", responseHeader: "" }).start(exchange("embed"));
  t.same(await run?.onRequestHeaders?.(), { type: "continue", edits: { setHeaders: { "x-guard-route": "embed" } } });
  t.equal(run?.onResponseHeaders, undefined);
});

t.test("response header only: the upstream request is left as it is", async (t) => {
  const run = createAnnotateStage({ requestHeader: "", responseHeader: "x-guard-route" }).start(exchange("chat"));
  t.same(await run?.onRequestHeaders?.(), { type: "continue", needs: { responseHeaders: true } });
  t.same(await run?.onResponseHeaders?.(RESPONSE), {
    type: "continue",
    edits: { setHeaders: { "x-guard-route": "chat" } },
  });
});

t.test("both headers switched off: the stage takes no part in the exchange", async (t) => {
  t.equal(createAnnotateStage({ requestHeader: "", responseHeader: "" }).start(exchange("chat")), undefined);
});
