// `make run` as a user with their own config and model server runs it: `make run CONFIG=… UPSTREAM=
// http://host:port` (node dist/src/devstack/run.js --config=… --upstream=…) puts Envoy and the guard
// in front of the server, on the user's config, with the guard's log on the terminal.
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { stringify } from "yaml";
import { PROJECT_ROOT } from "../../src/devstack/envoy.js";
import { freePort } from "../../src/devstack/ports.js";
import { httpOk, spawnManaged, waitUntil } from "../../src/devstack/process.js";
import { loadGuardConfigObject } from "../../src/devstack/stack.js";
import { CHAT, post } from "../helpers/e2e.js";

t.test("make run CONFIG=… UPSTREAM=http://… serves the user's model through Envoy and the guard", async (t) => {
  const modelPort = await freePort();
  const model = spawnManaged("own-model", process.execPath, [
    join(PROJECT_ROOT, "dist", "src", "demo", "main.js"),
    "--port",
    String(modelPort),
    "--host",
    "127.0.0.1",
    "--pool",
    "users-own",
  ]);
  t.teardown(() => model.stop());
  await waitUntil("own model", () => httpOk(`http://127.0.0.1:${modelPort}/__demo/stats`), 15_000, model);

  const dir = await mkdtemp(join(tmpdir(), "guard-run-"));
  const configFile = join(dir, "my-guard.yaml");
  const adminPort = await freePort();
  const config = await loadGuardConfigObject();
  await writeFile(
    configFile,
    stringify({
      ...config,
      listen: { grpc: `127.0.0.1:${await freePort()}`, admin: `127.0.0.1:${adminPort}` },
      routes: [{ name: "mine", match: { pathPrefix: "/v1/chat/completions" }, admission: { enabled: true } }],
    }),
  );
  const listenPort = await freePort();
  const run = spawnManaged(
    "make-run",
    process.execPath,
    [
      join(PROJECT_ROOT, "dist", "src", "devstack", "run.js"),
      `--upstream=http://127.0.0.1:${modelPort}`,
      `--config=${configFile}`,
    ],
    { cwd: PROJECT_ROOT, env: { ...process.env, GUARD_DEMO_PORT: String(listenPort) } },
  );
  t.teardown(() => run.stop("SIGINT"));
  await waitUntil("make run", async () => run.output().includes("Ctrl-C stops everything"), 30_000, run);

  const answer = await post(`http://127.0.0.1:${listenPort}/v1/chat/completions`, CHAT);
  t.equal(answer.status, 200, answer.text);
  t.equal(answer.headers.get("x-demo-pool"), "users-own", "the user's server answered");
  t.equal(answer.headers.get("x-guard-route"), "mine", "on the user's config");
  t.match(run.output(), /\[guard\] \{"level":30,.*"msg":"inference-guard ready"/, "the guard's log is shown");
  t.match(run.output(), new RegExp(`Guard metrics +http://127\\.0\\.0\\.1:${adminPort}/metrics`));
  t.match(run.output(), /from .*my-guard\.yaml/);

  const refused = spawnManaged("make-run", process.execPath, [
    join(PROJECT_ROOT, "dist", "src", "devstack", "run.js"),
    "--upstream=https://model.example:443",
  ]);
  t.equal(await refused.exit, 2);
  t.match(refused.output(), /only http:\/\/ servers/, "a TLS upstream gets a clear error");
});
