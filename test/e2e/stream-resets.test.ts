// Node's HTTP/2 server answers more than 1000 RST_STREAMs on one connection (then 33/s) with GOAWAY,
// failing the streams in flight on it. ext_proc streams must therefore end without resets
// (envoy/envoy.yaml: graceful close; the guard ends its side when done): well over 1000 requests,
// no reset, and the guard must never have sent Envoy a GOAWAY.
import * as http2 from "node:http2";
import t from "tap";
import { envoyCounter, post, resettingEveryStream, stackFor } from "../helpers/e2e.js";

const REQUESTS = 1_500;
const PROCESS_PATH = "/envoy.service.ext_proc.v3.ExternalProcessor/Process";
const CONCURRENCY = 10;

t.setTimeout(240_000);

t.test(`${REQUESTS} requests, ${CONCURRENCY} at a time: no ext_proc stream lost to a GOAWAY`, async (t) => {
  const stack = await stackFor(t, {
    guardConfig: { routes: [{ name: "chat", match: { pathPrefix: "/v1/chat/completions" } }] },
  });
  const statuses = new Map<number, number>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < REQUESTS) {
      next++;
      const answer = await post(
        `${stack.url}/v1/chat/completions`,
        { model: "demo", messages: [{ role: "user", content: "hi" }] },
        {},
        30_000,
      );
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  t.same(Object.fromEntries(statuses), { 200: REQUESTS }, "every request answered 200");
  t.equal(await envoyCounter(stack.envoy.adminUrl, "http.inference.ext_proc.streams_failed"), 0);
  t.equal(
    await envoyCounter(stack.envoy.adminUrl, "cluster.inference_guard.upstream_cx_close_notify"),
    0,
    "the guard never sent GOAWAY",
  );
  t.equal(
    await envoyCounter(stack.envoy.adminUrl, "cluster.inference_guard.upstream_rq_tx_reset"),
    0,
    "no stream ended in a reset",
  );
});

t.test(`graceful close off: ${REQUESTS * 2} requests each ending in a reset, and no GOAWAY`, async (t) => {
  // Node's own budget (1000 resets, then 33/s) GOAWAYs Envoy's connection after the first thousand
  // requests (measured with it: requests failed, GOAWAYs sent); limits.streamResetBurst/Rate sit
  // above any Envoy's request rate.
  const stack = await stackFor(t, {
    guardConfig: { routes: [{ name: "chat", match: { pathPrefix: "/v1/chat/completions" } }] },
    editEnvoyConfig: resettingEveryStream,
  });
  let next = 0;
  const statuses = new Map<number, number>();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < REQUESTS * 2) {
        next++;
        const answer = await post(`${stack.url}/v1/chat/completions`, {
          model: "demo",
          messages: [{ role: "user", content: "hi" }],
        });
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      }
    }),
  );
  t.same(Object.fromEntries(statuses), { 200: REQUESTS * 2 }, "every request answered 200");
  const resets = await envoyCounter(stack.envoy.adminUrl, "cluster.inference_guard.upstream_rq_tx_reset");
  t.ok(resets >= REQUESTS * 2 - CONCURRENCY, `${resets} ext_proc streams ended in Envoy's reset`);
  t.equal(await envoyCounter(stack.envoy.adminUrl, "cluster.inference_guard.upstream_cx_close_notify"), 0, "no GOAWAY");
  t.equal(await envoyCounter(stack.envoy.adminUrl, "http.inference.ext_proc.streams_failed"), 0);
});

t.test("a peer resetting faster than its budget gets GOAWAY; the guard serves on", async (t) => {
  const stack = await stackFor(t, {
    guardConfig: {
      limits: { streamResetBurst: 100, streamResetRate: 10 },
      routes: [{ name: "chat", match: { pathPrefix: "/v1/chat/completions" } }],
    },
  });
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  const session = http2.connect(`http://${guard.address}`);
  session.on("error", () => undefined);
  const goaway = new Promise<number>((resolve) => session.once("goaway", (code: number) => resolve(code)));
  let opened = 0;
  for (; opened < 1_000 && !session.closed && !session.destroyed; opened++) {
    const stream = session.request({ ":method": "POST", ":path": PROCESS_PATH, "content-type": "application/grpc" });
    stream.on("error", () => undefined);
    stream.close(http2.constants.NGHTTP2_CANCEL);
    if (opened % 50 === 49) await new Promise((resolve) => setImmediate(resolve));
  }
  // Node closes a flooding connection with GOAWAY INTERNAL_ERROR.
  t.equal(await goaway, http2.constants.NGHTTP2_INTERNAL_ERROR, `GOAWAY after ${opened} of 1000 resets`);
  t.ok(opened < 1_000, "the budget (100, then 10/s), not the client, ended it");
  session.destroy();
  const answer = await post(`${stack.url}/v1/chat/completions`, {
    model: "demo",
    messages: [{ role: "user", content: "hi" }],
  });
  t.equal(answer.status, 200, "Envoy's own connection was not affected");
  t.equal(answer.headers.get("x-guard-route"), "chat");
});

t.test("streamed answers no stage follows end their ext_proc streams without resets too", async (t) => {
  // A contract for another model: the guard reads the request's model and the response headers,
  // then has nothing more to do while the answer streams on for longer than that took.
  const contract = {
    message: "demo.v1.TicketTriage",
    payload: "choices[*].message.content<json>",
    models: ["triage*"],
  };
  const stack = await stackFor(t, {
    guardConfig: {
      routes: [{ name: "chat", match: { pathPrefix: "/v1/chat/completions" }, usage: { enabled: false }, contract }],
    },
  });
  const streams = 400;
  let next = 0;
  const statuses = new Map<number, number>();
  const worker = async (): Promise<void> => {
    while (next < streams) {
      next++;
      const answer = await post(
        `${stack.url}/v1/chat/completions`,
        { model: "demo", stream: true, max_tokens: 16, messages: [{ role: "user", content: "hi" }] },
        { "x-demo-first-token-ms": "5", "x-demo-inter-token-ms": "15" },
        30_000,
      );
      const done = answer.text.includes("data: [DONE]");
      statuses.set(done ? answer.status : -1, (statuses.get(done ? answer.status : -1) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: 20 }, worker));
  t.same(Object.fromEntries(statuses), { 200: streams }, "every stream answered 200 and ended with [DONE]");
  t.equal(await envoyCounter(stack.envoy.adminUrl, "http.inference.ext_proc.streams_failed"), 0);
  t.equal(
    await envoyCounter(stack.envoy.adminUrl, "cluster.inference_guard.upstream_rq_tx_reset"),
    0,
    "no ext_proc stream ended in a reset",
  );
});
