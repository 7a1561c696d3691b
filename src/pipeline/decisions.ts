// One log line per decision the guard takes on a request (shed, contract violation, re-route to a
// costlier tier), with Envoy's request id and the trace id so an operator can follow one request
// from the access log or the trace to the guard. Rate-limited per kind: under overload every request is a shed, and the log must not
// become the next bottleneck. Lines carry ids, names and numbers only: never bodies or headers.
import type { Logger } from "pino";
import type { Exchange } from "./types.js";

export type DecisionKind = "shed" | "contract_violation" | "reroute";

export type DecisionFields = Readonly<Record<string, string | number | boolean | readonly string[] | undefined>>;

export type DecisionLog = (
  kind: DecisionKind,
  exchange: Pick<Exchange, "request" | "traceId">,
  route: string,
  fields: DecisionFields,
) => void;

/** Lines per second per kind (and burst size); beyond it lines are counted, not written. */
export const DECISION_LINES_PER_SECOND = 20;

interface Bucket {
  tokens: number;
  refilledAt: number;
  /** Lines dropped since the last one written; reported on the next line of that kind. */
  suppressed: number;
}

export function createDecisionLog(log: Logger, now: () => number, perSecond = DECISION_LINES_PER_SECOND): DecisionLog {
  const buckets = new Map<DecisionKind, Bucket>();
  return (kind, exchange, route, fields) => {
    const at = now();
    let bucket = buckets.get(kind);
    if (bucket === undefined) {
      bucket = { tokens: perSecond, refilledAt: at, suppressed: 0 };
      buckets.set(kind, bucket);
    }
    bucket.tokens = Math.min(perSecond, bucket.tokens + ((at - bucket.refilledAt) / 1000) * perSecond);
    bucket.refilledAt = at;
    if (bucket.tokens < 1) {
      bucket.suppressed++;
      return;
    }
    bucket.tokens -= 1;
    const suppressed = bucket.suppressed;
    bucket.suppressed = 0;
    log.info(
      {
        decision: kind,
        requestId: exchange.request.requestId,
        ...(exchange.traceId === undefined ? {} : { trace_id: exchange.traceId }),
        route,
        ...fields,
        ...(suppressed > 0 ? { suppressed } : {}),
      },
      `decision: ${kind}`,
    );
  };
}
