// The guard's answer to a shed request: immediate, explicit and machine-readable, so clients back
// off (Retry-After) instead of retrying into the overload.
import { type AnswerFormat, guardAnswer, retryAfterSeconds } from "../answers.js";
import type { Reply } from "../types.js";
import type { ShedReason } from "./controller.js";
import type { Priority } from "./priority.js";

export interface ShedAnswer {
  /** The controller's shed reasons, plus "shed.cancelled" for a gone client. */
  readonly reason: ShedReason | "shed.cancelled";
  readonly retryAfterMs: number;
}

export function shedReply(shed: ShedAnswer, priority: Priority, format: AnswerFormat): Reply {
  const wait = Math.round(shed.retryAfterMs);
  return guardAnswer(shed.reason, {
    format,
    detail: `a ${priority} request was not admitted; retry after ${readableWait(wait)}`,
    retryAfterMs: wait,
    extensions: { priority, retry_after_seconds: retryAfterSeconds(wait) },
  });
}

function readableWait(ms: number): string {
  return ms < 1_000 ? `${ms} ms` : `${Number((ms / 1_000).toFixed(1))} s`;
}
