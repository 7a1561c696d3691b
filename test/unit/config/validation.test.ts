// Validation is one pass: every part of the file is validated on its own and the checks between
// parts run on whatever is valid, so one call returns every problem, not the first of each kind.
import { fileURLToPath } from "node:url";
import t from "tap";
import { parseConfig } from "../../../src/config/load.js";
import { prepareText } from "../../../src/config/prepare.js";

const PROTO_DIR = fileURLToPath(new URL("../../../../proto/contracts", import.meta.url));

function errorPaths(text: string): string[] {
  const result = parseConfig(text);
  return result.ok ? [] : result.errors.map((issue) => issue.path);
}

t.test("independent errors in different sections all come back from one call", async (t) => {
  const result = parseConfig(`
listen: { grpc: "0.0.0.0:50051" }
drain: { timeoutMs: -1 }
envoy: { messageTimeoutMs: "soon" }
admission: { classes: { sheddable: { share: 0.95 } } }
cache: { maxBytes: 4096 }
contracts: { maxViolations: 0 }
routes:
  - name: chat
    match: { pathPrefix: /v1/chat }
    cache: { enabled: true, maxEntryBytes: 8192 }
  - name: heavy
    match: { pathPrefix: /v1/heavy, methods: [post] }
    complexity: { enabled: true, tiers: [{ name: light, minCost: 5 }] }
  - name: chat
    match: { pathPrefix: /v1/chat/completions }
    admission: { enabeld: true }
`);
  t.notOk(result.ok);
  t.same(result.ok ? [] : result.errors.map((issue) => issue.path).sort(), [
    "admission.classes.sheddable.share",
    "contracts.maxViolations",
    "drain.timeoutMs",
    "envoy.messageTimeoutMs",
    "listen.grpc",
    "routes[0].cache.maxEntryBytes",
    "routes[1].complexity.tiers[0].minCost",
    "routes[1].match.methods[0]",
    "routes[2].admission.enabeld",
    "routes[2].match",
    "routes[2].name",
  ]);
});

t.test("a route that an earlier route always matches first is an error naming both", async (t) => {
  const result = parseConfig(`
routes:
  - name: predict
    match: { pathPrefix: /v1/predict/ }
  - name: sentiment
    match: { pathPrefix: /v1/predict/sentiment }
`);
  t.same(result.ok ? [] : result.errors, [
    {
      path: "routes[1].match",
      message:
        'routes[1] "sentiment" (pathPrefix "/v1/predict/sentiment") can never match: ' +
        'routes[0] "predict" (pathPrefix "/v1/predict/") comes first and matches every request it would',
    },
  ]);
});

t.test("shadowing is reported only when the earlier route matches every request the later one would", async (t) => {
  const routes = (first: string, second: string) =>
    `routes:\n  - { name: first, match: ${first} }\n  - { name: second, match: ${second} }\n`;
  const shadowed = (first: string, second: string) => errorPaths(routes(first, second)).includes("routes[1].match");

  t.ok(shadowed("{}", "{ pathPrefix: /v1 }"), "a catch-all takes everything");
  t.ok(shadowed("{ pathPrefix: /v1 }", "{ pathPrefix: /v1 }"), "the same match twice");
  t.ok(shadowed("{ pathPrefix: /v1 }", "{ pathPrefix: /v1x }"), "prefixes are strings, not path segments");
  t.ok(shadowed("{ methods: [POST, GET] }", "{ methods: [POST] }"), "fewer methods");
  t.ok(
    shadowed("{ headers: { x-tenant: a } }", "{ headers: { x-tenant: a, x-tier: b }, methods: [PUT] }"),
    "more headers, the same values",
  );

  t.notOk(shadowed("{ pathPrefix: /v1/predict/ }", "{ pathPrefix: /v1/ }"), "the later one is broader");
  t.notOk(shadowed("{ methods: [POST] }", "{}"), "the later one takes other methods too");
  t.notOk(shadowed("{ methods: [POST] }", "{ methods: [POST, GET] }"), "the later one takes GET too");
  t.notOk(shadowed("{ headers: { x-tier: b } }", "{}"), "the later one takes requests without the header");
  t.notOk(shadowed("{ headers: { x-tier: b } }", "{ headers: { x-tier: c } }"), "another header value");
});

t.test("a route in maintenance that takes everything first is a warning, not an error", async (t) => {
  const result = parseConfig(`
routes:
  - { name: down, match: { pathPrefix: / }, maintenance: {} }
  - { name: chat, match: { pathPrefix: /v1/chat } }
`);
  t.equal(result.ok, true, "the sidecar can be taken out of service with one route");
  t.same(result.warnings, [
    {
      path: "routes[1].match",
      message:
        'routes[1] "chat" (pathPrefix "/v1/chat") is out of service while routes[0] "down" (pathPrefix "/"), ' +
        "in maintenance, comes first",
    },
  ]);
});

t.test("a route with an unknown key does not take the default match into the shadowing check", async (t) => {
  const result = parseConfig(`
routes:
  - { name: a, mtch: { pathPrefix: /v1/chat } }
  - { name: b, match: { pathPrefix: /v1/embeddings } }
`);
  t.same(result.ok ? [] : result.errors.map((issue) => issue.path), ["routes[0].mtch"], "only the typo");
});

t.test("a section that failed to parse is not also reported as having no effect", async (t) => {
  const result = parseConfig("cache: { maxBytes: -1 }\nroutes: [{ name: chat }]\n");
  t.same(result.ok ? [] : result.errors.map((issue) => issue.path), ["cache.maxBytes"]);
  t.same(result.warnings, []);
});

t.test("a shadowing check between valid routes survives an invalid route between them", async (t) => {
  t.same(
    errorPaths(`
routes:
  - { name: all, match: {} }
  - { name: Broken!, match: { pathPrefix: /x } }
  - { name: chat, match: { pathPrefix: /v1/chat } }
`),
    ["routes[1].name", "routes[1].match", "routes[2].match"],
  );
});

t.test("unknown and unused top-level sections are warnings, not errors", async (t) => {
  const result = parseConfig(`
admision: { enabled: true }
cache: { maxBytes: 2048 }
admission: { defaultCost: 2 }
contracts: { maxViolations: 5 }
canary: { redis: { url: "redis://127.0.0.1:6379" } }
routes: [{ name: chat }]
`);
  t.ok(result.ok, "the config still loads");
  t.same(result.warnings, [
    {
      path: "admision",
      message:
        "unknown section, ignored (sections: listen, drain, envoy, annotate, log, limits, admin, cache, admission, budget, contracts, drift, canary, usage, identity, tracing, routes)",
    },
    { path: "cache", message: "no route enables the cache: this section has no effect" },
    { path: "admission", message: "no route enables admission: this section has no effect" },
    { path: "contracts", message: "no route binds a contract: this section has no effect" },
    { path: "canary", message: "no route is in rollout (routes[].canary): this section has no effect" },
  ]);
  const used = parseConfig(`
cache: { maxBytes: 2048 }
admission: { defaultCost: 2 }
routes: [{ name: chat, cache: { enabled: true, maxEntryBytes: 1024 }, admission: { enabled: true } }]
`);
  t.same(used.warnings, [], "sections the routes use are not warned about");
});

t.test("warnings are returned with the errors, so one call shows everything", async (t) => {
  const result = parseConfig("bogus: 1\ndrain: { timeoutMs: -1 }\n");
  t.notOk(result.ok);
  t.same(
    result.warnings.map((issue) => issue.path),
    ["bogus"],
  );
});

t.test("contract bindings are checked in the same pass as the rest of the file", async (t) => {
  const result = await prepareText(`
drain: { timeoutMs: -1 }
contracts: { protoPaths: ["${PROTO_DIR}"] }
routes:
  - { name: broken, match: { pathPrefix: /a }, contract: { message: demo.v1.Sentiment, acton: enforce } }
  - { name: typo, match: { pathPrefix: /b }, contract: { message: demo.v1.Sentimnt } }
`);
  t.notOk(result.ok);
  t.same(result.ok ? [] : result.errors.map((issue) => issue.path), [
    "drain.timeoutMs",
    "routes[0].contract.acton",
    "routes[1].contract.message",
  ]);
});

t.test("the frozen config keeps the file's route order and nothing of the unknown sections", async (t) => {
  const result = parseConfig("extra: 1\nroutes: [{ name: b, match: { pathPrefix: /b } }, { name: a }]\n");
  t.ok(result.ok);
  if (!result.ok) return;
  t.same(
    result.config.routes.map((route) => route.name),
    ["b", "a"],
  );
  t.notOk("extra" in result.config);
  t.ok(Object.isFrozen(result.config.routes[0]?.match));
});

t.test("routes[].streaming.ndjson: defaults, and every error names its path", async (t) => {
  const declared = parseConfig(`
routes:
  - { name: ollama, match: { pathPrefix: /api/ }, streaming: { ndjson: { format: ollama } } }
  - { name: plain, match: { pathPrefix: /v1/ } }
`);
  t.ok(declared.ok);
  if (declared.ok) {
    t.same(declared.config.routes[0]?.streaming, {
      ndjson: { format: "ollama", contentTypes: ["application/x-ndjson"] },
    });
    t.same(declared.config.routes[1]?.streaming, {}, "undeclared: NDJSON is a plain body");
  }
  const result = parseConfig(`
routes:
  - name: a
    match: { pathPrefix: /a }
    streaming:
      ndjson:
        format: vllm
        contentTypes: [application/x-ndjson, text/event-stream, application/json, application/json-seq, "Application/JSONL; charset=utf-8", application/x-ndjson]
  - { name: b, match: { pathPrefix: /b }, streaming: { ndjson: { contentTypes: [] } } }
  - { name: c, match: { pathPrefix: /c }, streaming: { ndjsn: {} } }
`);
  const errors = result.ok ? [] : result.errors;
  t.same(errors.map((issue) => issue.path).sort(), [
    "routes[0].streaming.ndjson.contentTypes[1]",
    "routes[0].streaming.ndjson.contentTypes[2]",
    "routes[0].streaming.ndjson.contentTypes[3]",
    "routes[0].streaming.ndjson.contentTypes[4]",
    "routes[0].streaming.ndjson.contentTypes[5]",
    "routes[0].streaming.ndjson.format",
    "routes[1].streaming.ndjson.contentTypes",
    "routes[2].streaming.ndjsn",
  ]);
  const message = (path: string) => errors.find((issue) => issue.path === path)?.message ?? "";
  t.match(message("routes[0].streaming.ndjson.contentTypes[1]"), /Server-Sent Events, streamed on every route/);
  t.match(message("routes[0].streaming.ndjson.contentTypes[2]"), /every non-streamed JSON answer/);
  t.match(message("routes[0].streaming.ndjson.contentTypes[3]"), /RFC 7464/);
  t.match(message("routes[0].streaming.ndjson.contentTypes[4]"), /lower-case media type without parameters/);
  t.match(message("routes[0].streaming.ndjson.contentTypes[5]"), /listed twice/);
});

t.test("limits: the largest message holds Envoy's buffered body, and fits the memory budget", async (t) => {
  t.same(errorPaths("limits: {}"), [], "the defaults fit the default Envoy buffer (8 MiB)");
  t.same(errorPaths("envoy: { bufferLimitBytes: 33554432 }"), ["limits.maxMessageBytes"], "a 32 MiB buffer needs more");
  t.same(errorPaths("envoy: { bufferLimitBytes: 33554432 }\nlimits: { maxMessageBytes: 34603008 }"), []);
  const result = parseConfig("limits: { maxMessageBytes: 67108864, maxBufferedBytes: 33554432 }");
  t.same(result.ok ? [] : result.errors.map((issue) => `${issue.path}: ${issue.message}`), [
    "limits.maxBufferedBytes: 33554432 is below limits.maxMessageBytes (67108864): the largest message would never fit the budget",
  ]);
});

t.test("routes[].canary.shadow: defaults, and every error names its path", async (t) => {
  const result = parseConfig(`
canary: { envoyUrl: "http://127.0.0.1:8080/" }
routes:
  - name: eta
    match: { pathPrefix: /v1/predict/eta }
    contract: { message: demo.v1.DeliveryEta }
    canary: { stable: v1, candidates: [{ pool: v3, weight: 0 }], shadow: { pool: v3 } }
`);
  t.ok(result.ok);
  if (!result.ok) return;
  t.equal(result.config.canary.envoyUrl, "http://127.0.0.1:8080", "the trailing slash dropped");
  t.same(result.config.routes[0]?.canary?.shadow, {
    pool: "v3",
    sampleRate: 0.05,
    maxConcurrent: 4,
    timeoutMs: 5_000,
    numericTolerance: { absolute: 0, relative: 0 },
    noiseQuantile: 0.99,
    window: 1_000,
    minComparisons: 30,
    confidence: 0.95,
    minDifference: 0.05,
  });
  t.same(
    errorPaths(`
routes:
  - name: eta
    match: { pathPrefix: /v1/predict/eta }
    canary: { stable: v1, candidates: [{ pool: v3, weight: 0 }], shadow: { pool: v3 } }
  - name: sentiment
    match: { pathPrefix: /v1/predict/sentiment }
    contract: { message: demo.v1.Sentiment }
    canary:
      stable: v1
      candidates: [{ pool: v2, weight: 0.1 }]
      shadow: { pool: v9, sampleRate: 2, numericTolerance: { relative: -1 } }
`).sort(),
    [
      "canary.envoyUrl",
      "routes[0].canary.shadow",
      "routes[1].canary.shadow.numericTolerance.relative",
      "routes[1].canary.shadow.pool",
      "routes[1].canary.shadow.sampleRate",
    ],
    "no Envoy URL, no contract to compare through; the other route's own errors, all in one pass",
  );
  t.same(
    errorPaths(`
canary: { envoyUrl: "http://127.0.0.1:8080" }
routes:
  - name: sentiment
    match: { pathPrefix: /v1/predict/sentiment }
    contract: { message: demo.v1.Sentiment }
    canary: { stable: v1, candidates: [{ pool: v2, weight: 0.1 }], shadow: { pool: v9 } }
`),
    ["routes[0].canary.shadow.pool"],
    "the compared pool must be a candidate",
  );
});
