// The guard's answer to a shed request: immediate, explicit and machine-readable, so clients back
// off (Retry-After) instead of retrying into the overload.
import { type AnswerFormat, guardAnswer } from "../answers.js";
import type { Reply } from "../types.js";
import type { ShedReason } from "./controller.js";
import type { Priority } from "./priority.js";

export interface ShedAnswer {
  /** The controller's shed reasons, plus "shed.cancelled" for a gone client. */
  readonly reason: ShedReason | "shed.cancelled";
  readonly retryAfterSeconds: number;
}

export function shedReply(shed: ShedAnswer, priority: Priority, format: AnswerFormat): Reply {
  return guardAnswer(shed.reason, {
    format,
    detail: `a ${priority} request was not admitted; retry after ${shed.retryAfterSeconds} s`,
    retryAfterSeconds: shed.retryAfterSeconds,
    extensions: { priority, retry_after_seconds: shed.retryAfterSeconds },
  });
}
