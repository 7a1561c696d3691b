// Hot reload under load through Envoy: a broken config is rejected and the running one stays; a good
// one takes effect for new requests; no request fails either way.
import { writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import t from "tap";
import { stringify } from "yaml";
import { metricSum } from "../../bench/metrics-text.js";
import { waitUntil } from "../../src/devstack/process.js";
import { CHAT, post, stackFor } from "../helpers/e2e.js";

function configWith(routeName: string, listen: unknown): string {
  return stringify({
    listen,
    // As the stack's own config has it: no drain grace to wait through at teardown.
    drain: { graceMs: 0 },
    routes: [{ name: routeName, match: { pathPrefix: "/v1/chat/completions" } }],
  });
}

t.test("reload of a bad and a good config under load", async (t) => {
  const stack = await stackFor(t, {
    guardConfig: { routes: [{ name: "chat", match: { pathPrefix: "/v1/chat/completions" } }] },
  });
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  const listen = { grpc: guard.address, admin: guard.adminUrl.replace("http://", "") };

  let stop = false;
  const statuses: number[] = [];
  const routesSeen = new Set<string>();
  const load = (async () => {
    while (!stop) {
      const answers = await Promise.all([0, 1, 2, 3].map(() => post(`${stack.url}/v1/chat/completions`, CHAT)));
      for (const answer of answers) {
        statuses.push(answer.status);
        routesSeen.add(answer.headers.get("x-guard-route") ?? "none");
      }
    }
  })();

  await sleep(300);
  await writeFile(guard.configFile, "routes: [{ name: BROKEN, bogus: 1 }]\n");
  guard.process().child.kill("SIGHUP");
  await waitUntil(
    "failed reload counted",
    async () => /guard_config_reloads_total\{result="failure"\} [1-9]/.test(await guard.metrics()),
    5_000,
  );
  const answer = await post(`${stack.url}/v1/chat/completions`, CHAT);
  t.equal(answer.headers.get("x-guard-route"), "chat", "the running config stayed");

  // No signal this time: the file watch picks the change up.
  await writeFile(guard.configFile, configWith("chat-v2", listen));
  await waitUntil(
    "new config in force",
    async () => (await post(`${stack.url}/v1/chat/completions`, CHAT)).headers.get("x-guard-route") === "chat-v2",
    5_000,
  );
  stop = true;
  await load;

  t.ok(statuses.length > 20, `${statuses.length} requests during the reloads`);
  t.same(
    statuses.filter((status) => status !== 200),
    [],
    "no request failed",
  );
  t.same([...routesSeen].sort(), ["chat", "chat-v2"], "every request was guarded by the old or the new config");
  t.match(guard.process().output(), /reload rejected; the running configuration stays/);
  t.match(guard.process().output(), /routes\[0\]\.name/, "the rejection names the bad path");
  t.match(await guard.metrics(), /guard_config_reloads_total\{result="success"\} [1-9]/);
});

t.test("a reload keeps the stages' counters; a removed route's series go", async (t) => {
  // Each route buffers its answers' bodies to count their reported tokens (guard_tokens_total).
  const routes = [
    { name: "chat", match: { pathPrefix: "/v1/chat/completions" }, usage: { countBodies: true } },
    { name: "completions", match: { pathPrefix: "/v1/completions" }, usage: { countBodies: true } },
    {
      name: "sentiment",
      match: { pathPrefix: "/v1/predict/sentiment" },
      contract: { message: "demo.v1.Sentiment", action: "enforce" },
    },
  ];
  const stack = await stackFor(t, { guardConfig: { routes } });
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  const listen = { grpc: guard.address, admin: guard.adminUrl.replace("http://", "") };
  for (let i = 0; i < 3; i++) t.equal((await post(`${stack.url}/v1/chat/completions`, CHAT)).status, 200);
  t.equal((await post(`${stack.url}/v1/completions`, { model: "demo", prompt: "hi" })).status, 200);
  const tokens = (metrics: string, route: string): number =>
    metricSum(metrics, "guard_tokens_total", { route, kind: "completion" });
  const violated = await post(
    `${stack.url}/v1/predict/sentiment`,
    { text: "rescaled" },
    { "x-demo-variant": "score_rescaled", "x-demo-version": "v2" },
  );
  t.equal(violated.status, 502, "a contract violation for the status page's table");
  /** The status page's latest example of the violation, without its age (the clock moves on). */
  const example = async (): Promise<unknown> => {
    const status = (await (await fetch(`${guard.adminUrl}/api/status`)).json()) as {
      contracts: Array<{ topRules: Array<{ example: { ageSeconds?: number } | null }> }>;
    };
    const { ageSeconds: _age, ...rest } = status.contracts[0]?.topRules[0]?.example ?? {};
    return rest;
  };
  const exampleBefore = await example();
  t.match(exampleBefore, { field: String, message: String }, "the status page lists the violation");
  const before = await guard.metrics();
  t.ok(tokens(before, "chat") > 0 && tokens(before, "completions") > 0, "both routes counted tokens");
  const profiled = (metrics: string): number => metricSum(metrics, "guard_drift_samples", { route: "sentiment" });
  t.equal(profiled(before), 1, "the drift monitor profiled the sentiment answer");

  await writeFile(guard.configFile, stringify({ listen, drain: { graceMs: 0 }, routes: [routes[0], routes[2]] }));
  guard.process().child.kill("SIGHUP");
  await waitUntil(
    "reloaded",
    async () => /guard_config_reloads_total\{result="success"\} 1/.test(await guard.metrics()),
    5_000,
  );
  const after = await guard.metrics();
  t.equal(tokens(after, "chat"), tokens(before, "chat"), "the chat route's counter went on, no reset");
  t.notMatch(after, /route="completions"/, "the removed route's series are gone");
  t.same(await example(), exampleBefore, "the status page's violation example survived the reload");
  t.equal(profiled(after), 1, "so did the drift profile");
  t.equal((await post(`${stack.url}/v1/chat/completions`, CHAT)).status, 200);
  t.ok(tokens(await guard.metrics(), "chat") > tokens(before, "chat"), "and counts on");
});
