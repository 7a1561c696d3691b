// The admin port's door: Host must name the admin server (DNS rebinding), a browser's cross-site
// Origin is refused (CSRF), and what changes state needs the bearer token; every refusal has a
// status, a reason code and a JSON body, and is counted.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import t, { type Test } from "tap";
import { type AdminServer, sendJson, startAdminServer } from "../../../src/server/admin.js";
import { type AdminAccessSettings, adminAccess } from "../../../src/server/admin-access.js";
import { rawHttp } from "../../helpers/raw-http.js";
import { registryValue } from "../../helpers/registry-metrics.js";

interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: { error?: string; message?: string; purged?: boolean };
}

async function admin(
  t: Test,
  settings: Partial<AdminAccessSettings> = {},
  address = "127.0.0.1:0",
): Promise<{
  server: AdminServer;
  registry: Registry;
  call: (method: string, headers?: Record<string, string>) => Promise<Reply>;
}> {
  const registry = new Registry();
  const server = await startAdminServer(address, {
    registry: () => registry,
    ready: () => true,
    routes: new Map([["POST /admin/cache/purge", (_request, response) => sendJson(response, 200, { purged: true })]]),
    access: adminAccess({ address, allowedHosts: [], tokenFile: undefined, envToken: undefined, ...settings }),
  });
  t.teardown(() => server.close());
  const { port } = new URL(server.url);
  const call = async (method: string, headers: Record<string, string> = {}): Promise<Reply> => {
    const path = method === "POST" ? "/admin/cache/purge?route=chat" : "/healthz";
    const reply = await rawHttp(server.url, method, path, { host: `127.0.0.1:${port}`, ...headers });
    return { status: reply.status, headers: reply.headers, body: JSON.parse(reply.text) };
  };
  return { server, registry, call };
}

t.test("read-only endpoints are open to clients that name the admin server", async (t) => {
  const { call } = await admin(t);
  t.equal((await call("GET")).status, 200, "Host 127.0.0.1");
  t.equal((await call("GET", { host: "localhost:9464" })).status, 200, "localhost, any port");
  t.equal((await call("GET", { host: "[::1]" })).status, 200, "[::1]");
  t.equal((await call("GET", { origin: "http://127.0.0.1:9464" })).status, 200, "the page's own origin");
});

t.test("a Host that is not the admin server is refused: DNS rebinding reads nothing", async (t) => {
  const { call, registry } = await admin(t);
  const rebound = await call("GET", { host: "attacker.example:9464" });
  t.equal(rebound.status, 421);
  t.equal(rebound.headers["x-guard-reason"], "admin.host_not_allowed");
  t.equal(rebound.headers["content-type"], "application/json");
  t.match(rebound.body, { error: "admin.host_not_allowed", message: /attacker\.example:9464.*admin\.allowedHosts/ });
  t.equal((await call("GET", { host: "10.1.2.3:9464" })).status, 421, "another IP than the bound one");
  t.equal((await call("GET", { host: "a b" })).status, 421, "a malformed Host");
  t.equal(await registryValue(registry, "guard_admin_refusals_total", { reason: "admin.host_not_allowed" }), 3);
});

t.test("bound to every interface, IP literals (probes, scrapes) and the configured names pass", async (t) => {
  const { call } = await admin(t, { allowedHosts: ["Guard.inference.svc"] }, "0.0.0.0:0");
  t.equal((await call("GET", { host: "10.1.2.3:9464" })).status, 200, "a pod IP");
  t.equal((await call("GET", { host: "[fd00::1]:9464" })).status, 200, "an IPv6 literal");
  t.equal((await call("GET", { host: "guard.inference.svc:9464" })).status, 200, "a configured name, any case");
  t.equal((await call("GET", { host: "attacker.example" })).status, 421, "any other name");
});

t.test("cross-site browsers are refused, whatever the method", async (t) => {
  const { call } = await admin(t, { envToken: "s3cret" });
  for (const origin of ["http://attacker.example", "null"]) {
    const refused = await call("POST", { origin, authorization: "Bearer s3cret" });
    t.equal(refused.status, 403, origin);
    t.equal(refused.body.error, "admin.cross_origin");
  }
  t.equal((await call("GET", { origin: "http://attacker.example" })).status, 403, "a cross-site read too");
  t.equal(
    (await call("POST", { "sec-fetch-site": "cross-site", authorization: "Bearer s3cret" })).status,
    403,
    "a form post without Origin, told by Sec-Fetch-Site",
  );
});

t.test("without a configured token, what changes state is refused with how to set one", async (t) => {
  const { call } = await admin(t);
  const refused = await call("POST", { authorization: "Bearer anything" });
  t.equal(refused.status, 403);
  t.match(refused.body, {
    error: "admin.token_not_configured",
    message: /INFERENCE_GUARD_ADMIN_TOKEN.*admin\.tokenFile/,
  });
});

t.test("with a token: missing or wrong is 401 with a Bearer challenge, right reaches the endpoint", async (t) => {
  const { call, registry } = await admin(t, { envToken: "s3cret" });
  const missing = await call("POST");
  t.equal(missing.status, 401);
  t.equal(missing.headers["www-authenticate"], "Bearer");
  t.equal(missing.body.error, "admin.token_missing");
  const wrong = await call("POST", { authorization: "Bearer s3cre" });
  t.equal(wrong.status, 401);
  t.equal(wrong.body.error, "admin.token_invalid");
  t.same((await call("POST", { authorization: "bearer s3cret" })).body, { purged: true });
  t.equal(await registryValue(registry, "guard_admin_refusals_total", { reason: "admin.token_invalid" }), 1);
});

t.test("the token file is read at each request (a rotated Secret applies at once); the variable wins", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "guard-admin-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const tokenFile = join(dir, "token");
  const { call } = await admin(t, { tokenFile });
  t.equal(
    (await call("POST", { authorization: "Bearer one" })).body.error,
    "admin.token_not_configured",
    "no file yet",
  );
  await writeFile(tokenFile, "one\n");
  t.equal((await call("POST", { authorization: "Bearer one" })).status, 200);
  await writeFile(tokenFile, "two\n");
  t.equal((await call("POST", { authorization: "Bearer one" })).status, 401, "rotated");
  t.equal((await call("POST", { authorization: "Bearer two" })).status, 200);
  const both = await admin(t, { tokenFile, envToken: "env" });
  t.equal((await both.call("POST", { authorization: "Bearer two" })).status, 401);
  t.equal((await both.call("POST", { authorization: "Bearer env" })).status, 200);
});
