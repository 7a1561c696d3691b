// A streamed answer's contract verdict in its trailers: its headers went out before the verdict
// existed, so an HTTP/2 client reads it after the last event — when the upstream ends its answer
// with trailers (here the demo model's HTTP/1.1 chunked trailers, which Envoy forwards with the
// cluster's enable_trailers). Without upstream trailers there is nothing to add them to: Envoy
// drops trailers an ext_proc server makes up (envoy#40046).
import t from "tap";
import { STREAM_TRAILER } from "../../src/demo/send.js";
import { defaultConfigWith, stackFor } from "../helpers/e2e.js";
import { h2Post } from "../helpers/h2-client.js";
import { PACING, sentBody, TRIAGE } from "../helpers/sse-client.js";

/** The model clusters parse their upstreams' HTTP/1.1 trailers (Envoy drops them otherwise). */
const HTTP1_TRAILERS = `
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: { http_protocol_options: { enable_trailers: true } }`;

function withUpstreamTrailers(yaml: string): string {
  return yaml.replace(/(\n {4}- name: model_(?:light|heavy)\n {6}type: STATIC)/g, `$1${HTTP1_TRAILERS}`);
}

const BROKEN = { ...TRIAGE, "x-demo-variant": "empty_summary", "x-demo-version": "v2" };
const request = JSON.stringify(
  sentBody({ model: "triage-2024", messages: [{ role: "user", content: "my parcel never came" }] }),
);

t.test("the verdict of a streamed answer reaches an HTTP/2 client in the trailers", async (t) => {
  const config = await defaultConfigWith({});
  const routes = config.routes as Record<string, unknown>[];
  const shadowed = routes.map((route) =>
    route.name === "chat"
      ? { ...route, contract: { ...(route.contract as Record<string, unknown>), action: "shadow" } }
      : route,
  );
  const stack = await stackFor(t, {
    guardConfig: { ...config, routes: shadowed },
    editEnvoyConfig: withUpstreamTrailers,
  });
  const chat = `${stack.url}/v1/chat/completions`;

  const violated = await h2Post(chat, request, { ...BROKEN, ...PACING, "x-demo-trailers": "1" });
  t.equal(violated.status, 200, "over HTTP/2");
  t.ok(violated.body.includes("data: [DONE]"), "shadow: every event went through");
  t.same(
    violated.trailers,
    { ...STREAM_TRAILER, "x-guard-contract": "violated; rules=string.min_len" },
    "the upstream's trailer, and the verdict beside it",
  );
  t.equal(violated.headers["x-guard-contract"], undefined, "not in the headers: they left before the verdict");

  const passed = await h2Post(chat, request, { ...TRIAGE, ...PACING, "x-demo-trailers": "1" });
  t.equal(passed.trailers["x-guard-contract"], "passed", "a conforming stream says so too");

  const without = await h2Post(chat, request, { ...BROKEN, ...PACING });
  t.equal(without.status, 200, "no upstream trailers");
  t.same(without.trailers, {}, "an answer without trailers gets none: Envoy would drop them");
});
