// A chat-completions exchange as the pipeline opens one (anonymous tenant, standard class, the
// request headers read, a body to follow), for tests of a single stage; `values` are laid on top.
import type { Exchange } from "../../src/pipeline/types.js";

export function chatExchange(values: Partial<Exchange> = {}): Exchange {
  return {
    request: {
      method: "POST",
      path: "/v1/chat/completions",
      authority: "model",
      headers: new Map(),
      requestId: "r",
      endOfStream: false,
    },
    route: { name: "chat" },
    startedAt: 0,
    tenant: "anonymous",
    priority: "standard",
    extendDeadline: () => undefined,
    ...values,
  };
}
