// Added latency of output-contract validation inline, through the real Envoy: the sentiment route
// of the default config with its contract (enforce) against the same stack without it. The cache
// is off on that route in both stacks: it would buffer the response body too and hide the cost of
// the contract's extra buffered round trip. Both stacks run at once and take turns, so drift of
// the shared machine hits both alike.
// Run after build: node dist/bench/contracts-inline.js [requests per phase, default 300]
// Writes bench/results/contracts-inline-<date>.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { loadGuardConfigObject, type Stack, startStack } from "../src/devstack/stack.js";
import { percentile } from "../src/util/percentile.js";

const REQUESTS = Number(process.argv[2] ?? 300);
const CONCURRENCY = 8;
const ROUNDS = 3;
const WARM_UP = 50;

type Variant = "with_contract" | "without_contract";
type Phase = "sequential" | "concurrent";

async function stackFor(variant: Variant): Promise<Stack> {
  const base = await loadGuardConfigObject();
  const routes = (base.routes as Array<Record<string, unknown>>).map((route) => {
    if (route.name !== "sentiment") return route;
    const { contract, ...rest } = route;
    return { ...rest, cache: { enabled: false }, ...(variant === "with_contract" ? { contract } : {}) };
  });
  return startStack({ guardConfig: { ...base, routes } });
}

let sequence = 0;

/** Requests that did not get a 200, per variant: reported, never folded into the latencies. */
const failures: Record<Variant, string[]> = { with_contract: [], without_contract: [] };

async function request(stack: Stack, variant: Variant): Promise<number | undefined> {
  const started = performance.now();
  const response = await fetch(`${stack.url}/v1/predict/sentiment`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ text: `review ${++sequence}: the delivery was quick and the support friendly` }),
  });
  await response.arrayBuffer();
  const elapsed = performance.now() - started;
  if (response.status !== 200) {
    failures[variant].push(`${response.status} after ${Math.round(elapsed)} ms`);
    return undefined;
  }
  // Proof the variant is what it claims: the verdict header only comes from a checked response.
  if ((response.headers.get("x-guard-contract") === "passed") !== (variant === "with_contract"))
    throw new Error("contract verdict header mismatch");
  return elapsed;
}

async function phase(stack: Stack, variant: Variant, concurrency: number, count: number): Promise<number[]> {
  const samples: number[] = [];
  let issued = 0;
  const worker = async (): Promise<void> => {
    while (issued < count) {
      issued++;
      const elapsed = await request(stack, variant);
      if (elapsed !== undefined) samples.push(elapsed);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return samples;
}

function median(values: readonly number[]): number {
  return percentile(values, 0.5) ?? Number.NaN;
}

const round3 = (value: number): number => Math.round(value * 1000) / 1000;

const stacks = {
  with_contract: await stackFor("with_contract"),
  without_contract: await stackFor("without_contract"),
} satisfies Record<Variant, Stack>;
try {
  const perRound: Record<Variant, Record<Phase, Array<{ p50: number; p99: number }>>> = {
    with_contract: { sequential: [], concurrent: [] },
    without_contract: { sequential: [], concurrent: [] },
  };
  for (const [variant, stack] of Object.entries(stacks) as Array<[Variant, Stack]>) {
    await phase(stack, variant, CONCURRENCY, WARM_UP);
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [phaseName, concurrency] of [
      ["sequential", 1],
      ["concurrent", CONCURRENCY],
    ] as Array<[Phase, number]>) {
      for (const [variant, stack] of Object.entries(stacks) as Array<[Variant, Stack]>) {
        const samples = await phase(stack, variant, concurrency, REQUESTS);
        perRound[variant][phaseName].push({
          p50: percentile(samples, 0.5) ?? Number.NaN,
          p99: percentile(samples, 0.99) ?? Number.NaN,
        });
      }
    }
  }
  const summary: Record<string, Record<string, { p50Ms: number; p99Ms: number }>> = {};
  for (const phaseName of ["sequential", "concurrent"] as const) {
    summary[phaseName] = {};
    for (const variant of ["without_contract", "with_contract"] as const) {
      const rounds = perRound[variant][phaseName];
      summary[phaseName][variant] = {
        p50Ms: round3(median(rounds.map((r) => r.p50))),
        p99Ms: round3(median(rounds.map((r) => r.p99))),
      };
    }
    const added = summary[phaseName];
    const withC = added.with_contract;
    const withoutC = added.without_contract;
    if (withC !== undefined && withoutC !== undefined) {
      added.added = { p50Ms: round3(withC.p50Ms - withoutC.p50Ms), p99Ms: round3(withC.p99Ms - withoutC.p99Ms) };
    }
  }
  // Connection churn to the guard: protocol errors here mean failed requests (see envoy.yaml).
  const guardConnections: Record<string, Record<string, number>> = {};
  for (const [variant, stack] of Object.entries(stacks)) {
    const stats = await (
      await fetch(
        `${stack.envoy.adminUrl}/stats?filter=^cluster\\.inference_guard\\.upstream_cx_(total|protocol_error|close_notify)$`,
      )
    ).text();
    guardConnections[variant] = Object.fromEntries(
      stats
        .trim()
        .split("\n")
        .map((line) => line.split(": "))
        .map(([name, value]) => [name?.replace("cluster.inference_guard.", "") ?? "", Number(value)]),
    );
  }
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    requestsPerPhase: REQUESTS,
    concurrency: CONCURRENCY,
    rounds: ROUNDS,
    summary,
    failures,
    guardConnections,
    perRound,
  };
  console.log(`sentiment route through Envoy, ${REQUESTS} requests per phase, median of ${ROUNDS} rounds (ms)`);
  console.log("phase       variant            p50      p99");
  for (const [phaseName, variants] of Object.entries(summary)) {
    for (const [variant, numbers] of Object.entries(variants)) {
      console.log(
        `${phaseName.padEnd(11)} ${variant.padEnd(18)} ${numbers.p50Ms.toFixed(3).padStart(7)}  ${numbers.p99Ms.toFixed(3).padStart(7)}`,
      );
    }
  }
  console.log(`failed requests: ${JSON.stringify(failures)}`);
  console.log(`guard connections: ${JSON.stringify(guardConnections)}`);
  const directory = new URL("../../bench/results/", import.meta.url);
  mkdirSync(directory, { recursive: true });
  writeFileSync(
    new URL(`contracts-inline-${result.date.slice(0, 10)}.json`, directory),
    `${JSON.stringify(result, null, 2)}\n`,
  );
} finally {
  await Promise.all(Object.values(stacks).map((stack) => stack.stop()));
}
