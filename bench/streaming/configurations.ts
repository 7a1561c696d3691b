// What `make bench-streaming` measures: one streamed chat request shape, paced by the demo model
// like an LLM decoding tokens, through the configurations below. Every configuration gets the same
// requests on the same kind of stack (startStack); only what sits between Envoy and the model changes.
import { loadGuardConfigObject, type StackOptions } from "../../src/devstack/stack.js";

export const STREAM_PATH = "/v1/chat/completions";
/** The model the chat contract binds (models: [triage*]) and one it does not. */
export const BOUND_MODEL = "triage-v1";
export const UNBOUND_MODEL = "assistant-v1";

export interface Pacing {
  readonly firstTokenMs: number;
  readonly interTokenMs: number;
}

/**
 * A streamed OpenAI chat request. With x-demo-task: chat_structured the demo streams a
 * demo.v1.TicketTriage JSON object in tokenizer-sized content deltas (3 to 8 characters): 23
 * events and `data: [DONE]` for this prompt, whatever the model name.
 */
export function streamRequestBody(model: string): string {
  return JSON.stringify({
    model,
    stream: true,
    temperature: 0,
    messages: [
      { role: "system", content: "Classify the support ticket." },
      { role: "user", content: "Customer reports that the invoice for last month was charged twice." },
    ],
  });
}

export function streamRequestHeaders(pacing: Pacing): Record<string, string> {
  return {
    "content-type": "application/json",
    accept: "text/event-stream",
    "x-demo-task": "chat_structured",
    "x-demo-first-token-ms": String(pacing.firstTokenMs),
    "x-demo-inter-token-ms": String(pacing.interTokenMs),
  };
}

export interface StreamingConfiguration {
  readonly id: string;
  readonly title: string;
  readonly notes: string;
  stackOptions(): Promise<StackOptions>;
  readonly model: string;
  /** Response headers the probe must show (null: must be absent). */
  readonly expectHeaders: Readonly<Record<string, string | null>>;
  /** guard_contract_checks_total{result} the probe must have added one to (guard configurations). */
  readonly expectCheck?: string;
  /** Whether guard or peer CPU is measured. */
  readonly server: "none" | "guard" | "peer";
}

export interface StreamPeer {
  /** The Go reference peer (or another server) started with -stream, through a shell. */
  readonly command: string;
  readonly address: string;
  readonly name: string;
}

const ROUTE_MATCH = { pathPrefix: STREAM_PATH, methods: ["POST"] };

/**
 * One route with only the chat contract of config/default.yaml, so the stream path of the
 * contracts stage is measured alone (admission and the cache would watch the stream too).
 */
async function contractOnlyGuard(action: "shadow" | "enforce"): Promise<Record<string, unknown>> {
  const config = await loadGuardConfigObject();
  const routes = (config.routes ?? []) as Record<string, unknown>[];
  const chat = routes.find((route) => route.name === "chat");
  const contract = { ...(chat?.contract as Record<string, unknown>), action, stream: "incremental" };
  return {
    listen: config.listen,
    contracts: config.contracts,
    routes: [{ name: "chat", match: ROUTE_MATCH, contract }],
  };
}

/**
 * config/default.yaml (complexity, admission held open as in make bench's d, cache, contract
 * enforce). A stream holds its admission cost (~5000 units for this request) until its last event,
 * so 200 concurrent streams hold ~1 000 000: make bench's open budget would shed here.
 */
async function fullGuard(): Promise<Record<string, unknown>> {
  const config = await loadGuardConfigObject();
  const admission = (config.admission ?? {}) as Record<string, unknown>;
  const limit = (admission.limit ?? {}) as Record<string, unknown>;
  const open = 1_000_000_000;
  return { ...config, admission: { ...admission, limit: { ...limit, initial: open, min: open, max: open } } };
}

export function configurations(peer: StreamPeer | undefined): StreamingConfiguration[] {
  const all: StreamingConfiguration[] = [
    {
      id: "envoy",
      title: "Envoy alone",
      notes: "Envoy → demo model, no ext_proc filter: the floor every other row is compared with",
      stackOptions: async () => ({ withGuard: false }),
      model: BOUND_MODEL,
      expectHeaders: { "x-guard-route": null },
      server: "none",
    },
  ];
  if (peer !== undefined) {
    all.push({
      id: "peer",
      title: `${peer.name}, stream pass-through`,
      notes: `\`${peer.command}\` at ${peer.address}: the guard's message exchange for a bound model (buffered request body, response headers, mode_override FULL_DUPLEX_STREAMED + trailers SEND, every chunk echoed as streamed_response) with no work`,
      stackOptions: async () => ({ peer: { command: peer.command, address: peer.address } }),
      model: BOUND_MODEL,
      expectHeaders: { "x-guard-route": "chat" },
      server: "peer",
    });
  }
  all.push(
    {
      id: "unbound",
      title: "guard, model not bound",
      notes: `contract-only route, model ${UNBOUND_MODEL} (the binding names triage*): request headers, buffered request body (the model is read from it) and response headers go through the guard; no body is asked for`,
      stackOptions: async () => ({ guardConfig: await contractOnlyGuard("enforce") }),
      model: UNBOUND_MODEL,
      expectHeaders: { "x-guard-route": "chat" },
      expectCheck: "not_applicable",
      server: "guard",
    },
    {
      id: "shadow",
      title: "guard, incremental + shadow",
      notes: `contract-only route, model ${BOUND_MODEL}, action shadow, stream incremental: every chunk through the guard (FULL_DUPLEX_STREAMED) and forwarded at once; the assembled answer is checked at the end`,
      stackOptions: async () => ({ guardConfig: await contractOnlyGuard("shadow") }),
      model: BOUND_MODEL,
      expectHeaders: { "x-guard-route": "chat" },
      expectCheck: "passed",
      server: "guard",
    },
    {
      id: "enforce",
      title: "guard, incremental + enforce",
      notes: `contract-only route, model ${BOUND_MODEL}, action enforce, stream incremental: every JSON value checked as it completes, bytes of an unsettled value held back, [DONE] held for the final verdict`,
      stackOptions: async () => ({ guardConfig: await contractOnlyGuard("enforce") }),
      model: BOUND_MODEL,
      expectHeaders: { "x-guard-route": "chat" },
      expectCheck: "passed",
      server: "guard",
    },
    {
      id: "full",
      title: "guard, config/default.yaml",
      notes: `everything on (complexity, admission held open, 64 MiB cache watching the stream, contract enforce incremental); every URI distinct (cache misses); model ${BOUND_MODEL}. Not in the default selection (--only … ,full)`,
      stackOptions: async () => ({ guardConfig: await fullGuard() }),
      model: BOUND_MODEL,
      expectHeaders: { "x-guard-route": "chat", "x-guard-cache": "miss" },
      expectCheck: "passed",
      server: "guard",
    },
  );
  return all;
}

export const DEFAULT_SELECTION = ["envoy", "peer", "unbound", "shadow", "enforce"];
