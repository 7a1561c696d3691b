// One candidate pool's life in a rollout: serving (its answers counted and judged), quarantined
// (a small probe share, its probes counted toward an automatic release when configured), and back
// to serving on release with fresh evidence. A plain state machine over an injected clock; the
// route's settings are passed in, so the state outlives a reload that changes them.
import type { RouteCanaryConfig } from "./config.js";
import { type AnswerKind, countAnswer, EMPTY_WINDOW, type HealthVerdict, type HealthWindow, judge } from "./health.js";

export interface Quarantine {
  /** Clock time (ms) it began. */
  readonly since: number;
  /** Why: the verdict and the answers it was drawn from. */
  readonly verdict: Extract<HealthVerdict, { healthy: false }>;
  readonly evidence: HealthWindow;
  /** Probe answers in a row without a violation or error. */
  readonly healthyProbes: number;
}

/** What an answer or an operator changed, for the stage to log and count. */
export type Transition =
  | { readonly kind: "quarantined"; readonly quarantine: Quarantine }
  | { readonly kind: "released"; readonly by: "auto" | "operator"; readonly after: Quarantine }
  | undefined;

export class CandidateState {
  readonly #now: () => number;
  #window: HealthWindow = EMPTY_WINDOW;
  #quarantine: Quarantine | undefined;

  constructor(now: () => number) {
    this.#now = now;
  }

  get quarantine(): Quarantine | undefined {
    return this.#quarantine;
  }

  /** Answers counted since it last began serving. */
  get window(): HealthWindow {
    return this.#window;
  }

  /** Its share of the route's requests now: its weight, or the probe share while quarantined. */
  share(weight: number, settings: RouteCanaryConfig): number {
    return this.#quarantine === undefined ? weight : Math.min(weight, settings.quarantine.probeRate);
  }

  record(kind: AnswerKind, settings: RouteCanaryConfig): Transition {
    const quarantine = this.#quarantine;
    if (quarantine !== undefined) {
      const healthyProbes = kind === "ok" ? quarantine.healthyProbes + 1 : 0;
      const { autoReleaseAfter } = settings.quarantine;
      if (autoReleaseAfter > 0 && healthyProbes >= autoReleaseAfter) return this.release("auto");
      this.#quarantine = { ...quarantine, healthyProbes };
      return undefined;
    }
    this.#window = countAnswer(this.#window, kind);
    const verdict = judge(this.#window, settings.health);
    if (verdict.healthy) return undefined;
    this.#quarantine = { since: this.#now(), verdict, evidence: this.#window, healthyProbes: 0 };
    return { kind: "quarantined", quarantine: this.#quarantine };
  }

  /** Back to serving with fresh evidence; undefined when it was not quarantined. */
  release(by: "auto" | "operator"): Transition {
    const after = this.#quarantine;
    if (after === undefined) return undefined;
    this.#quarantine = undefined;
    this.#window = EMPTY_WINDOW;
    return { kind: "released", by, after };
  }
}
