// What an operator sees, end to end through the real Envoy: the status page rendered by headless
// Chromium (screenshot kept in test/artifacts/), the /metrics exposition checked by promtool, and
// the guard's log: one decision line per shed, violation and re-route, with Envoy's request id,
// and never a prompt or a credential.

import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { PROJECT_ROOT } from "../../src/devstack/envoy.js";
import { waitUntil } from "../../src/devstack/process.js";
import { defaultConfigWith, post, postFrom, stackFor } from "../helpers/e2e.js";
import { ensureCommand, run } from "../helpers/system.js";

/** A row of the status page's tables, by its leading attributes. */
function statusRow(html: string, attributes: string): string {
  return new RegExp(`<tr ${attributes}[\\s\\S]*?</tr>`).exec(html)?.[0] ?? "";
}

const MARKER = `PROMPT-MARKER-${randomUUID()}`;
const CREDENTIAL = `sk-test-${randomUUID()}`;
const AUTH = { authorization: `Bearer ${CREDENTIAL}`, "x-api-key": CREDENTIAL };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

t.test("status page, metrics exposition and decision logs after real traffic", async (t) => {
  const promtool = ensureCommand("promtool", ["promtool"]);
  const browser = ensureCommand("browser", ["chromium-headless-shell", "chromium"]);
  const stack = await stackFor(t, {
    guardConfig: await defaultConfigWith({
      log: { level: "debug" },
      // A budget of one cost unit: one request in flight is enough to shed a sheddable one.
      admission: { limit: { initial: 1, min: 1, max: 1 }, classes: { sheddable: { maxWaitMs: 0 } } },
      // Clients on 127.0.0.3 are sheddable: a source Envoy reports and the client cannot forge.
      identity: { priority: { rules: [{ attribute: "source.address", prefix: "127.0.0.3:", priority: "sheddable" }] } },
    }),
  });
  const guard = stack.guard;
  if (guard === undefined) throw new Error("no guard");
  const chat = (content: string, extra: Record<string, unknown> = {}) => ({
    model: "demo",
    temperature: 0,
    messages: [{ role: "user", content }],
    ...extra,
  });

  // Cacheable chat traffic: the same prompt twice is a miss, then hits.
  for (let i = 0; i < 4; i++)
    t.equal((await post(`${stack.url}/v1/chat/completions`, chat(`${MARKER} hello ${i % 2}`), AUTH)).status, 200);
  // A long prompt costs more than the light tier allows: re-routed to the heavy pool.
  const heavy = await post(
    `${stack.url}/v1/chat/completions`,
    chat(`${MARKER} ${"long text ".repeat(4000)}`, { max_tokens: 4000 }),
    AUTH,
  );
  t.equal(heavy.headers.get("x-demo-pool"), "heavy");
  for (let i = 0; i < 3; i++)
    t.equal((await post(`${stack.url}/v1/predict/sentiment`, { text: `${MARKER} great` }, AUTH)).status, 200);
  const violated = await post(
    `${stack.url}/v1/predict/sentiment`,
    { text: `${MARKER} great` },
    { ...AUTH, "x-demo-variant": "score_rescaled", "x-demo-version": "v2" },
  );
  t.equal(violated.status, 502);
  t.equal(violated.headers.get("x-guard-reason"), "contract.violated");
  const slow = post(
    `${stack.url}/v1/predict/sentiment`,
    { text: `${MARKER} slow` },
    { ...AUTH, "x-demo-latency-ms": "3000" },
  );
  await waitUntil(
    "the slow request holds the budget",
    async () => /guard_admission_inflight_cost\{pool="sentiment"\} [1-9]/.test(await guard.metrics()),
    10_000,
  );
  const shed = await postFrom("127.0.0.3", `${stack.url}/v1/predict/sentiment`, { text: `${MARKER} shed me` }, AUTH);
  t.equal(shed.status, 429);
  t.equal(shed.headers.get("x-guard-reason"), "shed.overload");
  t.equal((await slow).status, 200);

  t.test("promtool check metrics passes on the live exposition", async (t) => {
    const exposition = await guard.metrics();
    t.match(exposition, /guard_shed_total\{reason="shed.overload",priority="sheddable",route="sentiment"\} 1/);
    const result = run(promtool, ["check", "metrics"], exposition);
    t.equal(result.status, 0, result.output);
    t.equal(result.output.trim(), "", "no lint findings");
  });

  t.test("the status page as first sent holds the traffic: no script needed", async (t) => {
    const response = await fetch(`${guard.adminUrl}/`);
    t.equal(response.status, 200);
    const page = await response.text();
    const row = (attributes: string): string => statusRow(page, attributes);
    t.match(row(`data-route="sentiment"`), /<td class="num requests">6<\/td>/, "the route and its requests");
    const broken = row(`data-contract="demo.v1.Sentiment" data-model-version="v2" class="broken"`);
    t.match(broken, /data-rule="double\.gte_lte"/, "the violation's rule");
    t.match(broken, /must be greater than or equal to 0 and less than or equal to 1/, "its message");
    t.notMatch(page, new RegExp(MARKER), "no prompt content on the page");
  });

  t.test("the status page renders the traffic in headless Chromium", async (t) => {
    const profile = await mkdtemp(join(tmpdir(), "guard-chromium-"));
    t.teardown(() => rm(profile, { recursive: true, force: true }));
    const flags = [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--hide-scrollbars",
      `--user-data-dir=${profile}`,
      "--window-size=1400,1000",
      // Lets the page's first live update (GET /status/live) land before the dump.
      "--virtual-time-budget=5000",
    ];
    const page = `${guard.adminUrl}/`;
    const dump = run(browser, [...flags, "--dump-dom", page]);
    if (dump.status !== 0) t.comment(dump.output.slice(-2000));
    t.equal(dump.status, 0, "chromium dumped the rendered DOM");
    const dom = dump.stdout;
    t.match(dom, /<body[^>]*data-loaded="true"/, "the page's script swapped in a live update");
    t.match(dom, /id="state"[^>]*data-state="live"/);
    const row = (attributes: string): string => statusRow(dom, attributes);
    const sentiment = row(`data-route="sentiment"`);
    t.match(sentiment, /data-reason="shed\.overload" data-priority="sheddable"/, "the shed, by reason and class");
    t.match(sentiment, /<td class="num requests">6<\/td>/, "the route's requests");
    const chatRow = row(`data-route="chat"`);
    t.match(chatRow, /class="ratio-value">\d+(\.\d)?%</, "the cache hit ratio");
    t.match(chatRow, /class="histogram"/, "the request-cost histogram");
    const broken = row(`data-contract="demo.v1.Sentiment" data-model-version="v2"`);
    t.match(broken, /class="num violated">1</, "the violating version");
    t.match(broken, /data-rule="double\.gte_lte"/, "its top rule");
    t.match(broken, /<code class="field">score<\/code>/, "the example's field");
    t.match(broken, /must be greater than or equal to 0 and less than or equal to 1/, "the example's message");
    t.notMatch(dom, new RegExp(MARKER), "no prompt content on the page");

    const artifacts = join(PROJECT_ROOT, "test", "artifacts");
    await mkdir(artifacts, { recursive: true });
    const screenshot = join(artifacts, "status-page.png");
    const shot = run(browser, [...flags, `--screenshot=${screenshot}`, page]);
    if (shot.status !== 0) t.comment(shot.output.slice(-2000));
    t.equal(shot.status, 0, "chromium took the screenshot");
    t.ok((await stat(screenshot)).size > 20_000, "a screenshot with content");
  });

  t.test("one decision line per shed, violation and re-route; no prompt or credential in the log", async (t) => {
    const output = guard.process().output();
    const lines = output
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const decisions = lines.filter((line) => line.decision !== undefined);
    const shedLines = decisions.filter((line) => line.decision === "shed");
    t.equal(shedLines.length, 1);
    t.match(shedLines[0], { route: "sentiment", reason: "shed.overload", priority: "sheddable", status: 429 });
    const violations = decisions.filter((line) => line.decision === "contract_violation");
    t.equal(violations.length, 1);
    t.match(violations[0], {
      route: "sentiment",
      contract: "demo.v1.Sentiment",
      modelVersion: "v2",
      action: "enforce",
    });
    const reroutes = decisions.filter((line) => line.decision === "reroute");
    t.equal(reroutes.length, 1);
    t.match(reroutes[0], { route: "chat", tier: "heavy" });
    for (const line of decisions)
      t.match(String(line.requestId), UUID, `${String(line.decision)}: Envoy's x-request-id`);
    t.notOk(output.includes(MARKER), "no prompt text in the guard's output");
    t.notOk(output.includes(CREDENTIAL), "no credential in the guard's output");
  });
});
