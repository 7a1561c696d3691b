// The response cache through a real Envoy 1.40: the demo model's request counter is the proof of
// what reached the upstream. One stack serves the single-sidecar cases (each with its own request
// body, so they cannot hit each other's entries); two stacks and a real redis-server serve the
// shared-tier cases.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import t, { type Test } from "tap";
import { metricSum } from "../../bench/metrics-text.js";
import { waitUntil } from "../../src/devstack/process.js";
import type { Stack } from "../../src/devstack/stack.js";
import { type Answer, defaultConfigWith, post, stackFor, upstreamServed } from "../helpers/e2e.js";
import { startRedis } from "../helpers/redis.js";

const CHAT_PATH = "/v1/chat/completions";

/** A deterministic (temperature 0) chat request, distinct per tag. */
function chat(tag: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: "demo", temperature: 0, messages: [{ role: "user", content: `cache e2e: ${tag}` }], ...extra };
}

async function servedDuring(stack: Stack, run: () => Promise<unknown>): Promise<number> {
  const before = await upstreamServed(stack.light.url);
  await run();
  return (await upstreamServed(stack.light.url)) - before;
}

const ADMIN_TOKEN = "cache-e2e-admin-token";

async function purge(stack: Stack, route: string, token = ADMIN_TOKEN): Promise<Response> {
  return fetch(`${stack.guard?.adminUrl}/admin/cache/purge?route=${route}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
  });
}

function headerOf(answer: Answer, name: string): string | null {
  return answer.headers.get(name);
}

interface StreamedAnswer extends Answer {
  /** Reads that returned bytes, and when the first and last of them came (ms after the request). */
  readonly chunks: number;
  readonly firstByteMs: number;
  readonly lastByteMs: number;
}

/** A POST whose body is read as it arrives, timing its pieces. */
async function postStream(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
  timeoutMs = 15_000,
): Promise<StreamedAnswer> {
  const started = performance.now();
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const decoder = new TextDecoder();
  let text = "";
  let chunks = 0;
  let firstByteMs = Number.NaN;
  let lastByteMs = Number.NaN;
  const reader = response.body?.getReader();
  for (let read = await reader?.read(); read !== undefined && !read.done; read = await reader?.read()) {
    if (read.value.length === 0) continue;
    const now = performance.now() - started;
    if (chunks === 0) firstByteMs = now;
    lastByteMs = now;
    chunks++;
    text += decoder.decode(read.value, { stream: true });
  }
  return {
    status: response.status,
    headers: response.headers,
    text: text + decoder.decode(),
    chunks,
    firstByteMs,
    lastByteMs,
  };
}

/** The data of each SSE event, in order. */
function dataEvents(text: string): string[] {
  return text
    .split(/\r?\n\r?\n/)
    .map((event) =>
      event
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n"),
    )
    .filter((data) => data !== "");
}

/** The answer's text: every chat chunk's delta content, concatenated. */
function deltaContent(text: string): string {
  return dataEvents(text)
    .filter((data) => data !== "[DONE]")
    .map(
      (data) =>
        (JSON.parse(data) as { choices?: { delta?: { content?: string } }[] }).choices?.[0]?.delta?.content ?? "",
    )
    .join("");
}

t.test("one sidecar", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "guard-cache-e2e-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const tokenFile = join(dir, "admin-token");
  await writeFile(tokenFile, `${ADMIN_TOKEN}\n`);
  const stack = await stackFor(t, { guardConfig: await defaultConfigWith({ admin: { tokenFile } }) });
  const url = `${stack.url}${CHAT_PATH}`;

  t.test("a hit never reaches the upstream and replays the stored answer", async (t) => {
    const body = chat("hit");
    let first: Answer | undefined;
    t.equal(await servedDuring(stack, async () => (first = await post(url, body))), 1, "the miss went upstream");
    if (first === undefined) throw new Error("no answer");
    t.equal(first.status, 200);
    t.equal(headerOf(first, "x-guard-cache"), "miss");
    // Ages are whole seconds: wait so a real age shows.
    await sleep(1_100);
    let hit: Answer | undefined;
    t.equal(await servedDuring(stack, async () => (hit = await post(url, body))), 0, "the hit did not");
    if (hit === undefined) throw new Error("no answer");
    t.equal(hit.status, 200);
    t.equal(headerOf(hit, "x-guard-cache"), "hit");
    t.equal(headerOf(hit, "x-guard-cache-tier"), "local");
    t.ok(Number(headerOf(hit, "age")) >= 1, `age ${headerOf(hit, "age")}`);
    t.equal(hit.text, first.text, "identical body");
    for (const name of ["content-type", "x-model-version"])
      t.equal(headerOf(hit, name), headerOf(first, name), `stored ${name}`);
    t.equal(headerOf(hit, "x-demo-request-sha256"), null, "headers outside the allow-list are not replayed");
    // Key normalisation: key order and excluded fields do not matter.
    const reordered = { messages: body.messages, temperature: 0, model: "demo", user: "someone-else" };
    const again = await post(url, reordered);
    t.equal(headerOf(again, "x-guard-cache"), "hit", "reordered keys and an excluded field still hit");
  });

  t.test("tenant A never gets tenant B's entry", async (t) => {
    const body = chat("tenants");
    const tenantA = { authorization: "Bearer tenant-a" };
    const tenantB = { authorization: "Bearer tenant-b" };
    const served = await servedDuring(stack, async () => {
      t.equal(headerOf(await post(url, body, tenantA), "x-guard-cache"), "miss");
      t.equal(headerOf(await post(url, body, tenantB), "x-guard-cache"), "miss", "B misses A's entry");
      t.equal(headerOf(await post(url, body), "x-guard-cache"), "miss", "no Authorization is a tenant of its own");
      t.equal(headerOf(await post(url, body, tenantA), "x-guard-cache"), "hit");
      t.equal(headerOf(await post(url, body, tenantB), "x-guard-cache"), "hit");
    });
    t.equal(served, 3, "one upstream call per tenant");
  });

  t.test("50 concurrent identical requests reach the upstream once", async (t) => {
    const body = chat("single-flight");
    let answers: Answer[] = [];
    // The leader's answer takes 1.5 s, so all 50 arrive while it is in flight.
    const served = await servedDuring(stack, async () => {
      answers = await Promise.all(
        Array.from({ length: 50 }, () => post(url, body, { "x-demo-latency-ms": "1500" }, 30_000)),
      );
    });
    t.equal(served, 1, "exactly one upstream call");
    t.same(
      answers.filter((answer) => answer.status !== 200).map((answer) => answer.status),
      [],
      "all 200",
    );
    const tiers = answers.map((answer) => headerOf(answer, "x-guard-cache-tier") ?? headerOf(answer, "x-guard-cache"));
    t.equal(tiers.filter((tier) => tier === "miss").length, 1, "one leader");
    t.equal(tiers.filter((tier) => tier === "coalesced").length, 49, "49 coalesced followers");
    t.equal(new Set(answers.map((answer) => answer.text)).size, 1, "everyone got the same body");
    t.match(await stack.guard?.metrics(), /guard_cache_coalesced_total\{route="chat",outcome="served"\} 49/);
  });

  t.test("a model version change stops old entries being served", async (t) => {
    const body = chat("version");
    t.equal(headerOf(await post(url, body), "x-model-version"), "v1");
    t.equal(headerOf(await post(url, body), "x-guard-cache"), "hit");
    const config = await fetch(`${stack.light.url}/__demo/config`, {
      method: "POST",
      body: JSON.stringify({ version: "v2" }),
    });
    t.equal(config.status, 200);
    t.teardown(() =>
      fetch(`${stack.light.url}/__demo/config`, { method: "POST", body: JSON.stringify({ version: "v1" }) }),
    );
    // The guard learns the new version from the first response that shows it (any request of the route).
    const other = await post(url, chat("version-observer"));
    t.equal(headerOf(other, "x-model-version"), "v2");
    let after: Answer | undefined;
    t.equal(await servedDuring(stack, async () => (after = await post(url, body))), 1, "the v1 entry was not served");
    t.equal(after === undefined ? null : headerOf(after, "x-model-version"), "v2");
    t.equal(after === undefined ? null : headerOf(after, "x-guard-cache"), "miss");
    t.equal(headerOf(await post(url, body), "x-guard-cache"), "hit", "the v2 answer is cached in turn");
    t.match(await stack.guard?.metrics(), /guard_cache_epoch_changes_total\{route="chat",cause="version"\} [1-9]/);
  });

  /** Sets a demo pool's model version for the rest of the subtest (back to v1 after it). */
  const poolVersion = async (t: Test, pool: "light" | "heavy", version: string): Promise<void> => {
    const configure = (to: string) =>
      fetch(`${stack[pool].url}/__demo/config`, { method: "POST", body: JSON.stringify({ version: to }) });
    t.equal((await configure(version)).status, 200);
    t.teardown(() => configure("v1"));
  };

  t.test("an answer the cache does not store still retires the old version's entries", async (t) => {
    const body = chat("unstored-observer");
    t.equal(headerOf(await post(url, body), "x-guard-cache"), "miss");
    t.equal(headerOf(await post(url, body), "x-guard-cache"), "hit");
    await poolVersion(t, "light", "v5");
    // A sampled request bypasses the cache, and its answer shows the pool moved on.
    const sampled = await post(url, chat("unstored-observer: sampled", { temperature: 0.7 }));
    t.equal(headerOf(sampled, "x-guard-cache"), "bypass");
    t.equal(headerOf(sampled, "x-model-version"), "v5");
    let after: Answer | undefined;
    t.equal(await servedDuring(stack, async () => (after = await post(url, body))), 1, "the v1 entry was not served");
    t.equal(after === undefined ? null : headerOf(after, "x-model-version"), "v5");
  });

  t.test("two pools on different versions keep their own entries", async (t) => {
    await poolVersion(t, "heavy", "v9");
    const light = chat("pools: light");
    // Cost 4 × 4000 output tokens: the heavy tier, so the heavy pool.
    const heavy = chat("pools: heavy", { max_tokens: 4000 });
    const first = [await post(url, light), await post(url, heavy)];
    t.same(
      first.map((answer) => [headerOf(answer, "x-demo-pool"), headerOf(answer, "x-model-version")]),
      [
        ["light", "v1"],
        ["heavy", "v9"],
      ],
    );
    const before = (await stack.guard?.metrics()) ?? "";
    for (let round = 0; round < 3; round++) {
      t.equal(headerOf(await post(url, light), "x-guard-cache"), "hit", `light, round ${round}`);
      t.equal(headerOf(await post(url, heavy), "x-guard-cache"), "hit", `heavy, round ${round}`);
    }
    const epochChanges = (text: string) =>
      metricSum(text, "guard_cache_epoch_changes_total", { route: "chat", cause: "version" });
    t.equal(epochChanges((await stack.guard?.metrics()) ?? ""), epochChanges(before), "no epoch flip-flop");
  });

  t.test("Cache-Control: no-store bypasses the cache", async (t) => {
    const body = chat("no-store");
    const served = await servedDuring(stack, async () => {
      for (let i = 0; i < 2; i++) {
        const answer = await post(url, body, { "cache-control": "no-store" });
        t.equal(answer.status, 200);
        t.equal(headerOf(answer, "x-guard-cache"), "bypass");
        t.equal(headerOf(answer, "x-guard-cache-reason"), "cache_control");
      }
    });
    t.equal(served, 2);
    t.equal(headerOf(await post(url, body), "x-guard-cache"), "miss", "nothing was stored for it either");
  });

  t.test("non-deterministic requests bypass the cache", async (t) => {
    const body = { model: "demo", temperature: 0.7, messages: [{ role: "user", content: "cache e2e: sampled" }] };
    const served = await servedDuring(stack, async () => {
      for (let i = 0; i < 2; i++) {
        const answer = await post(url, body);
        t.equal(headerOf(answer, "x-guard-cache"), "bypass");
        t.equal(headerOf(answer, "x-guard-cache-reason"), "nondeterministic");
      }
    });
    t.equal(served, 2);
    const optedIn = await servedDuring(stack, async () => {
      t.equal(headerOf(await post(url, body, { "x-guard-cache": "allow" }), "x-guard-cache"), "miss");
      t.equal(
        headerOf(await post(url, body, { "x-guard-cache": "allow" }), "x-guard-cache"),
        "hit",
        "the opt-in header makes it cacheable",
      );
    });
    t.equal(optedIn, 1);
  });

  t.test("a deterministic stream is cached: the hit replays the stored event stream", async (t) => {
    // (On this route the bound contract has the stream delivered whole; how a miss streams and a
    // hit arrives is measured below, on a route without one.)
    const body = chat("stream", { stream: true });
    let first: StreamedAnswer | undefined;
    t.equal(await servedDuring(stack, async () => (first = await postStream(url, body))), 1, "the miss went upstream");
    if (first === undefined) throw new Error("no answer");
    t.equal(first.status, 200);
    t.match(headerOf(first, "content-type"), /^text\/event-stream/);
    t.equal(headerOf(first, "x-guard-cache"), "miss");
    const events = dataEvents(first.text);
    t.equal(events.at(-1), "[DONE]", "the whole stream arrived");
    t.ok(events.length >= 4, `${events.length} events`);

    let hit: StreamedAnswer | undefined;
    t.equal(await servedDuring(stack, async () => (hit = await postStream(url, body))), 0, "the hit did not");
    if (hit === undefined) throw new Error("no answer");
    t.equal(hit.status, 200);
    t.match(headerOf(hit, "content-type"), /^text\/event-stream/);
    t.equal(headerOf(hit, "x-guard-cache"), "hit");
    t.equal(headerOf(hit, "x-guard-cache-tier"), "local");
    t.equal(deltaContent(hit.text), deltaContent(first.text), "the same answer");
    t.ok(deltaContent(hit.text).length > 0);
    t.equal(dataEvents(hit.text).at(-1), "[DONE]", "a well-formed stream, [DONE] included");
    t.equal(hit.text, first.text, "byte for byte the stream the first client got (ids and created included)");

    // The same messages unstreamed: keyed apart, never answered from the stream's entry.
    const unstreamed = chat("stream");
    let json: Answer | undefined;
    t.equal(await servedDuring(stack, async () => (json = await post(url, unstreamed))), 1, "went upstream");
    t.equal(json === undefined ? null : headerOf(json, "x-guard-cache"), "miss");
    t.match(json === undefined ? null : headerOf(json, "content-type"), /^application\/json/);
    t.equal(
      JSON.parse(json?.text ?? "{}").choices?.[0]?.message?.content,
      deltaContent(first.text),
      "same answer, its own form",
    );
    t.equal(headerOf(await post(url, unstreamed), "x-guard-cache"), "hit", "the JSON answer is cached in turn");
    const streamAgain = await postStream(url, body);
    t.equal(headerOf(streamAgain, "x-guard-cache"), "hit");
    t.equal(streamAgain.text, first.text, "and the stream's entry is still the stream");
    t.match(await stack.guard?.metrics(), /guard_cache_stores_total\{route="chat"\} [1-9]/);
  });

  t.test("an enforce-mode contract violation is never cached", async (t) => {
    const sentimentUrl = `${stack.url}/v1/predict/sentiment`;
    const body = { text: "the parcel arrived early, thanks" };
    const broken = { "x-guard-cache": "allow", "x-demo-variant": "score_rescaled" };
    const served = await servedDuring(stack, async () => {
      for (let i = 0; i < 2; i++) {
        const answer = await post(sentimentUrl, body, broken);
        t.equal(answer.status, 502, answer.text);
        t.equal(headerOf(answer, "x-guard-reason"), "contract.violated");
        t.not(headerOf(answer, "x-guard-cache"), "hit");
      }
    });
    t.equal(served, 2, "every violating answer came from the model again");
    const good = await servedDuring(stack, async () => {
      t.equal(headerOf(await post(sentimentUrl, body, { "x-guard-cache": "allow" }), "x-guard-cache"), "miss");
      t.equal(headerOf(await post(sentimentUrl, body, { "x-guard-cache": "allow" }), "x-guard-cache"), "hit");
    });
    t.equal(good, 1, "a conforming answer to the same request is cached");
    t.match(
      await stack.guard?.metrics(),
      /guard_cache_store_skipped_total\{route="sentiment",reason="contract_violated"\} 2/,
    );
  });

  t.test("the admin purge endpoint empties a route", async (t) => {
    const body = chat("purge");
    await post(url, body);
    t.equal(headerOf(await post(url, body), "x-guard-cache"), "hit");
    const purged = await purge(stack, "chat");
    t.equal(purged.status, 200, await purged.clone().text());
    t.equal(headerOf(await post(url, body), "x-guard-cache"), "miss", "purged");
    t.equal((await purge(stack, "no-such-route")).status, 404);
    t.equal((await purge(stack, "")).status, 400);
    t.equal((await purge(stack, "chat", "wrong")).status, 401, "only with the admin token");
  });
});

t.test("the cache never holds a stream back: the miss streams as it comes, the hit arrives at once", async (t) => {
  // The default chat route binds a contract, and the contracts stage still needs a response body
  // whole, which has Envoy buffer the stream for every stage. Without it, nothing but the cache
  // (and admission, which forwards) watches the stream.
  const defaults = await defaultConfigWith({});
  const routes = (defaults.routes as Record<string, unknown>[]).map((route) =>
    route.name === "chat" ? Object.fromEntries(Object.entries(route).filter(([key]) => key !== "contract")) : route,
  );
  const stack = await stackFor(t, { guardConfig: { ...defaults, routes } });
  const url = `${stack.url}${CHAT_PATH}`;
  const body = chat("stream-timing", { stream: true });
  // Paced like a model decoding, so a stream that arrives piece by piece can be told from a replay.
  const pacing = { "x-demo-first-token-ms": "100", "x-demo-inter-token-ms": "50" };

  const miss = await postStream(url, body, pacing);
  t.equal(headerOf(miss, "x-guard-cache"), "miss");
  const events = dataEvents(miss.text);
  t.equal(events.at(-1), "[DONE]");
  const span = miss.lastByteMs - miss.firstByteMs;
  t.ok(miss.chunks >= 3, `it streamed: ${miss.chunks} reads`);
  t.ok(
    span >= (events.length - 2) * 50 * 0.5,
    `first event at ${miss.firstByteMs.toFixed(0)} ms, last at ${miss.lastByteMs.toFixed(0)} ms (${events.length} events)`,
  );

  const hit = await postStream(url, body, pacing);
  t.equal(headerOf(hit, "x-guard-cache"), "hit");
  t.equal(hit.text, miss.text, "the stored stream");
  t.ok(
    hit.lastByteMs < miss.firstByteMs,
    `the whole replay (${hit.lastByteMs.toFixed(0)} ms) came before the miss's first event`,
  );
  t.match(await stack.guard?.metrics(), /guard_cache_stores_total\{route="chat"\} 1/);

  await t.test("a stream the client leaves is not stored", async (t) => {
    const body = chat("stream-left", { stream: true });
    const skipped = async () =>
      Number(
        /guard_cache_store_skipped_total\{route="chat",reason="cancelled"\} (\d+)/.exec(
          (await stack.guard?.metrics()) ?? "",
        )?.[1] ?? 0,
      );
    const before = await skipped();
    const controller = new AbortController();
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-demo-inter-token-ms": "200" },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    t.equal(response.headers.get("x-guard-cache"), "miss");
    const reader = response.body?.getReader();
    await reader?.read();
    controller.abort();
    await waitUntil("the guard to see the client leave", async () => (await skipped()) > before, 10_000);
    const again = await postStream(url, body);
    t.equal(headerOf(again, "x-guard-cache"), "miss", "nothing was stored");
    t.equal(dataEvents(again.text).at(-1), "[DONE]");
  });
});

t.test("two sidecars share hits through Redis and survive its loss", async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const config = await defaultConfigWith({
    cache: { maxBytes: 67_108_864, redis: { url: redis.url, probeIntervalMs: 200 } },
  });
  const [first, second] = await Promise.all([
    stackFor(t, { guardConfig: config }),
    stackFor(t, { guardConfig: config }),
  ]);
  const tenant = { authorization: "Bearer shared-tenant" };

  /** Stores via the first sidecar, then asks the second; true when the second answered from Redis. */
  async function sharedHit(tag: string): Promise<{ tier: string | null; served: number }> {
    const body = chat(tag);
    t.equal((await post(`${first.url}${CHAT_PATH}`, body, tenant)).status, 200);
    // The Redis write is fire and forget: give it a moment before asking the other sidecar.
    await sleep(100);
    let answer: Answer | undefined;
    const served = await servedDuring(
      second,
      async () => (answer = await post(`${second.url}${CHAT_PATH}`, body, tenant)),
    );
    return { tier: answer === undefined ? null : headerOf(answer, "x-guard-cache-tier"), served };
  }

  // Each sidecar keys entries by the model version it has observed; a sidecar that has not seen
  // one yet adopts it from Redis within epochRefreshMs. Steady state: both have seen v1.
  for (const stack of [first, second])
    t.equal((await post(`${stack.url}${CHAT_PATH}`, chat("warm-up"), tenant)).headers.get("x-model-version"), "v1");
  const shared = await sharedHit("redis-1");
  t.same(shared, { tier: "redis", served: 0 }, "the second sidecar's upstream saw no call");

  // Redis dies while traffic flows on both sidecars: nothing may fail.
  let stop = false;
  const statuses: number[] = [];
  const load = (async () => {
    let i = 0;
    while (!stop) {
      const tag = `redis-load-${i++ % 7}`;
      const answers = await Promise.all(
        [first, second].map((stack) => post(`${stack.url}${CHAT_PATH}`, chat(tag), tenant)),
      );
      statuses.push(...answers.map((answer) => answer.status));
    }
  })();
  await sleep(300);
  await redis.stop();
  await sleep(1_000);
  const duringOutage = statuses.length;
  await redis.restart();
  await sleep(500);
  stop = true;
  await load;
  t.ok(duringOutage > 5, `${statuses.length} requests around the outage`);
  t.same(
    statuses.filter((status) => status !== 200),
    [],
    "no request lost while Redis was down",
  );
  t.match(
    await first.guard?.metrics(),
    /guard_cache_redis_errors_total\{[^}]*\} [1-9]|guard_cache_redis_up 0/,
    "the outage was noticed",
  );

  // Sharing resumes once the sidecars reconnect (the restarted Redis is empty).
  let attempt = 0;
  let resumed: { tier: string | null; served: number } = { tier: null, served: -1 };
  await waitUntil(
    "sharing through the restarted Redis",
    async () => {
      resumed = await sharedHit(`redis-after-${attempt++}`);
      return resumed.tier === "redis";
    },
    15_000,
  );
  t.same(resumed, { tier: "redis", served: 0 }, "shared again after the restart");
  t.match(await second.guard?.metrics(), /guard_cache_redis_up 1/);
});
