// The guard's answer to a shed request: immediate, explicit and machine-readable, so clients back
// off (Retry-After) instead of retrying into the overload.
import type { Reply } from "../types.js";
import type { Priority } from "./priority.js";

export interface ShedAnswer {
  readonly status: 429 | 503;
  /** Bounded vocabulary: the controller's shed reasons, plus "shed.cancelled" for a gone client. */
  readonly reason: string;
  readonly retryAfterSeconds: number;
}

export function shedReply(shed: ShedAnswer, priority: Priority): Reply {
  const body = {
    error: shed.status === 503 ? "upstream unavailable" : "overloaded",
    reason: shed.reason,
    retry_after_seconds: shed.retryAfterSeconds,
    priority,
  };
  return {
    status: shed.status,
    headers: {
      "content-type": "application/json",
      "retry-after": String(shed.retryAfterSeconds),
      "x-guard-shed-reason": shed.reason,
      // A shed answer describes this moment only; no cache may serve it later.
      "cache-control": "no-store",
    },
    body: JSON.stringify(body),
    reason: shed.reason,
  };
}
