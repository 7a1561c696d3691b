// One candidate pool's life in a rollout: serving (its answers counted and judged), quarantined
// (a small probe share, its probes counted toward an automatic release when configured), and back
// to serving on release with fresh evidence. A plain state machine over an injected clock; the
// route's settings are passed in, so the state outlives a reload that changes them.
//
// With the shared Redis tier (canary.redis) the other sidecars' answers in the same serving
// generation are judged together with this one's, a quarantine decided elsewhere is adopted, and a
// release anywhere starts a new generation everywhere (fleet.ts carries them).
import type { RouteCanaryConfig } from "./config.js";
import {
  type AnswerKind,
  addWindows,
  countAnswer,
  EMPTY_WINDOW,
  type HealthVerdict,
  type HealthWindow,
  judge,
} from "./health.js";

export interface Quarantine {
  /** Clock time (ms) it began. */
  readonly since: number;
  /** Why: the verdict and the answers it was drawn from. */
  readonly verdict: Extract<HealthVerdict, { healthy: false }>;
  readonly evidence: HealthWindow;
  /** Probe answers in a row without a violation or error. */
  readonly healthyProbes: number;
  /** Decided by this sidecar, or adopted from another through the shared Redis. */
  readonly source: "local" | "fleet";
}

export type ReleasedBy = "auto" | "operator" | "fleet";

/** What an answer or an operator changed, for the stage to log and count. */
export type Transition =
  | { readonly kind: "quarantined"; readonly quarantine: Quarantine }
  | { readonly kind: "released"; readonly by: ReleasedBy; readonly after: Quarantine }
  | undefined;

export class CandidateState {
  readonly #now: () => number;
  #window: HealthWindow = EMPTY_WINDOW;
  #quarantine: Quarantine | undefined;
  /** The fleet's serving generation this state's counts belong to (bumped by every release). */
  #generation = 0;
  /** The other sidecars' answers in this generation, as of the last sync. */
  #fleetWindow: HealthWindow = EMPTY_WINDOW;
  /** A release made here that the fleet has not heard of yet. */
  #releaseUnshared = false;

  constructor(now: () => number) {
    this.#now = now;
  }

  get quarantine(): Quarantine | undefined {
    return this.#quarantine;
  }

  /** This sidecar's answers counted since the candidate last began serving. */
  get window(): HealthWindow {
    return this.#window;
  }

  /** The answers the health rule judges: this sidecar's and the other sidecars' in this generation. */
  get evidence(): HealthWindow {
    return addWindows(this.#window, this.#fleetWindow);
  }

  get generation(): number {
    return this.#generation;
  }

  get releaseUnshared(): boolean {
    return this.#releaseUnshared;
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
    return this.#judge(settings);
  }

  /** Back to serving with fresh evidence; undefined when it was not quarantined. */
  release(by: "auto" | "operator"): Transition {
    const transition = this.#startServing(by);
    if (transition !== undefined) this.#releaseUnshared = true;
    return transition;
  }

  /**
   * What a sync read from the fleet: its generation (a newer one is a release made elsewhere), the
   * other sidecars' answers in it, and the quarantine one of them decided.
   */
  adoptFleet(
    fleet: {
      readonly generation: number;
      readonly others: HealthWindow;
      readonly quarantine: Omit<Quarantine, "healthyProbes" | "source"> | undefined;
    },
    settings: RouteCanaryConfig,
  ): Transition {
    if (fleet.generation < this.#generation) return undefined;
    let released: Transition;
    if (fleet.generation > this.#generation) {
      this.#generation = fleet.generation;
      this.#releaseUnshared = false;
      released = this.#startServing("fleet");
      // Counts of the earlier generation are evidence against a version the operator released.
      this.#window = EMPTY_WINDOW;
    }
    this.#fleetWindow = fleet.others;
    if (this.#quarantine !== undefined) return released;
    if (fleet.quarantine !== undefined) {
      this.#quarantine = { ...fleet.quarantine, healthyProbes: 0, source: "fleet" };
      return { kind: "quarantined", quarantine: this.#quarantine };
    }
    return this.#judge(settings) ?? released;
  }

  /** The fleet now knows of this sidecar's release: its generation is the one the release began. */
  releaseShared(generation: number): void {
    this.#releaseUnshared = false;
    this.#generation = generation;
    this.#fleetWindow = EMPTY_WINDOW;
  }

  #judge(settings: RouteCanaryConfig): Transition {
    const evidence = this.evidence;
    const verdict = judge(evidence, settings.health);
    if (verdict.healthy) return undefined;
    this.#quarantine = { since: this.#now(), verdict, evidence, healthyProbes: 0, source: "local" };
    return { kind: "quarantined", quarantine: this.#quarantine };
  }

  #startServing(by: ReleasedBy): Transition {
    const after = this.#quarantine;
    if (after === undefined) return undefined;
    this.#quarantine = undefined;
    this.#window = EMPTY_WINDOW;
    this.#fleetWindow = EMPTY_WINDOW;
    return { kind: "released", by, after };
  }
}
