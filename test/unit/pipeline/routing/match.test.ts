import t from "tap";
import { type MatchableRoute, matchRoute } from "../../../../src/pipeline/routing/match.js";
import type { RequestInfo } from "../../../../src/pipeline/types.js";

function request(method: string, path: string, headers: Record<string, string> = {}): RequestInfo {
  return {
    method,
    path,
    authority: "guard.test",
    headers: new Map(Object.entries(headers)),
    requestId: "r-1",
    endOfStream: false,
  };
}

const ROUTES: MatchableRoute[] = [
  { name: "tenant-a-chat", match: { pathPrefix: "/v1/chat/", methods: ["POST"], headers: { "x-tenant": "a" } } },
  { name: "chat", match: { pathPrefix: "/v1/chat/", methods: ["POST"], headers: {} } },
  { name: "any", match: { pathPrefix: "/v1/", methods: [], headers: {} } },
];

const routeOf = (info: RequestInfo): string | undefined => matchRoute(ROUTES, info)?.name;

t.test("first match wins, in configuration order", async (t) => {
  t.equal(routeOf(request("POST", "/v1/chat/completions", { "x-tenant": "a" })), "tenant-a-chat");
  t.equal(routeOf(request("POST", "/v1/chat/completions")), "chat");
});

t.test("a required header must be present with exactly its value", async (t) => {
  t.equal(routeOf(request("POST", "/v1/chat/completions", { "x-tenant": "b" })), "chat", "another value");
  t.equal(routeOf(request("POST", "/v1/chat/completions", { "x-tenant": "A" })), "chat", "values are case-sensitive");
  t.equal(routeOf(request("POST", "/v1/chat/completions", { "x-other": "a" })), "chat", "another header");
});

t.test("methods restrict a route; an empty list takes every method", async (t) => {
  t.equal(routeOf(request("GET", "/v1/chat/completions", { "x-tenant": "a" })), "any");
  t.equal(routeOf(request("DELETE", "/v1/models")), "any");
});

t.test("no route matching means the request passes through untouched", async (t) => {
  t.equal(routeOf(request("POST", "/v2/chat/completions")), undefined);
  t.equal(routeOf(request("POST", "/v1")), undefined, "a prefix is matched as a string, /v1 is not under /v1/");
});
