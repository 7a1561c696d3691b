// Shadow comparison of a rollout route (routes[].canary.shadow). A sample of the requests the
// stable pool answers is sent again once the client has its answer: to the candidate, and once
// more to the stable pool. Both answers are compared with the client's (the "primary", whose
// payloads the contracts stage already parsed) field by field; the stable-vs-stable comparisons
// are the field's noise (diff.ts).
//
// Why the guard's own side requests and not Envoy's request_mirror_policies: Envoy's router sends
// the mirrored request past the filter chain and drops its answer (envoy#21684), so the guard
// would never see what the candidate said. The guard sends each side request through Envoy's
// listener (canary.envoyUrl) with x-guard-shadow naming the pool and carrying this guard's secret;
// the guard's own filter pass sees the header, sets the pool header Envoy's route table matches and
// runs no stage (sideRequest in stage.ts): no cache, no admission, no budget, no client metrics.
// Its answer comes back to the guard alone, never to a client.
//
// Nothing here is on a client's path: the sample is drawn at the request (so the body is kept only
// for sampled requests), and fired after the exchange ended. At most `maxConcurrent` comparisons
// are held or in flight; a sample drawn beyond them is dropped (counted), never queued, and each
// side request is abandoned after `timeoutMs`.
import type { Contract } from "../../contracts/contract.js";
import { profiledFields } from "../../contracts/fields.js";
import type { Payload } from "../../contracts/payload.js";
import type { Timers } from "../../util/timers.js";
import type { ShadowConfig } from "./config.js";
import {
  type AnswerFields,
  compareAnswers,
  type FieldStats,
  type FieldVerdict,
  FieldWindow,
  fieldStats,
  judgeField,
} from "./diff.js";

/** Fields of a contract compared at most: a bound of the field label. */
export const MAX_SHADOW_FIELDS = 32;

/** A side request, as the sender sends it through Envoy. */
export interface SideRequest {
  readonly route: string;
  readonly pool: string;
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

/** Resolves with the answer's status and body text; rejects on a network failure or the abort. */
export type SideSender = (request: SideRequest, signal: AbortSignal) => Promise<{ status: number; body: string }>;

export type SideResult = "ok" | "error" | "timeout";
export type SampleResult = "compared" | "dropped" | "incomplete";

export interface ShadowEvents {
  sample(result: SampleResult): void;
  side(pool: string, result: SideResult): void;
}

/** What a route's comparisons learnt, kept by the guard across reloads (CanaryStates). */
export class ShadowState {
  /** Per field path: the candidate-vs-stable window and the stable-vs-stable window. */
  readonly fields = new Map<string, { candidate: FieldWindow; noise: FieldWindow }>();
  /** Which candidate, window size and contract message the windows are for: another empties them. */
  pool = "";
  window = 0;
  contract = "";

  windowsOf(path: string): { candidate: FieldWindow; noise: FieldWindow } {
    let windows = this.fields.get(path);
    if (windows === undefined) {
      windows = { candidate: new FieldWindow(this.window), noise: new FieldWindow(this.window) };
      this.fields.set(path, windows);
    }
    return windows;
  }
}

/** One request drawn for comparison, filled in as its exchange goes on. */
export class ShadowSample {
  body: Uint8Array = new Uint8Array(0);
  primary: { readonly contract: Contract; readonly payloads: readonly Payload[] } | undefined;
  #settled = false;

  constructor(
    readonly request: Omit<SideRequest, "pool" | "body">,
    private readonly onSettle: () => void,
  ) {}

  /** Frees the sample's slot; the first call wins. */
  settle(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.onSettle();
  }
}

export interface FieldReport {
  readonly field: string;
  readonly candidate: FieldStats;
  readonly noise: FieldStats;
  readonly verdict: FieldVerdict;
}

export interface ShadowReport {
  readonly pool: string;
  readonly sampleRate: number;
  /** Comparisons held or in flight now, of at most maxConcurrent. */
  readonly inFlight: number;
  readonly maxConcurrent: number;
  readonly fields: readonly FieldReport[];
}

export interface ShadowDeps {
  readonly random: () => number;
  readonly timers: Timers;
  readonly send: SideSender;
  readonly events: ShadowEvents;
  /** A comparison that failed for a reason worth a line (not a timeout or a busy drop). */
  readonly warn: (message: string, detail: Record<string, unknown>) => void;
}

/** Answer fields per contract, derived once. */
const FIELDS = new WeakMap<Contract, AnswerFields>();

function answerFields(contract: Contract): AnswerFields {
  let fields = FIELDS.get(contract);
  if (fields === undefined) {
    const wrap = contract.wrap?.name;
    const specs = profiledFields(contract.spec.message, MAX_SHADOW_FIELDS);
    fields = { specs: wrap === undefined ? specs : specs.filter((spec) => spec.path === wrap), wrap };
    FIELDS.set(contract, fields);
  }
  return fields;
}

export class ShadowComparison {
  readonly #settings: ShadowConfig;
  readonly #stable: string;
  readonly #state: ShadowState;
  readonly #deps: ShadowDeps;
  #inFlight = 0;

  constructor(settings: ShadowConfig, stable: string, state: ShadowState, deps: ShadowDeps) {
    this.#settings = settings;
    this.#stable = stable;
    this.#state = state;
    this.#deps = deps;
    if (state.pool !== settings.pool || state.window !== settings.window) {
      state.fields.clear();
      state.pool = settings.pool;
      state.window = settings.window;
    }
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Draws a request of the stable pool for comparison: a sample, or undefined when it is not drawn
   * or every slot is taken (then dropped and counted).
   */
  draw(request: Omit<SideRequest, "pool" | "body">): ShadowSample | undefined {
    if (!(this.#deps.random() < this.#settings.sampleRate)) return undefined;
    if (this.#inFlight >= this.#settings.maxConcurrent) {
      this.#deps.events.sample("dropped");
      return undefined;
    }
    this.#inFlight++;
    return new ShadowSample(request, () => {
      this.#inFlight--;
    });
  }

  /**
   * The client has its answer: compares when the primary was parsed, else frees the slot. Resolves
   * once both side requests ended (tests await it; the stage does not).
   */
  async fire(sample: ShadowSample): Promise<void> {
    const primary = sample.primary;
    if (primary === undefined) {
      this.abandon(sample);
      return;
    }
    try {
      const [candidate, secondary] = await Promise.all([
        this.#ask(sample, this.#settings.pool, primary.contract),
        this.#ask(sample, this.#stable, primary.contract),
      ]);
      const fields = answerFields(primary.contract);
      if (this.#state.contract !== primary.contract.name) {
        // A reload bound another message: the old fields' comparisons say nothing of the new ones.
        this.#state.fields.clear();
        this.#state.contract = primary.contract.name;
      }
      const tolerance = this.#settings.numericTolerance;
      const against = (payloads: readonly Payload[] | undefined) =>
        payloads === undefined ? undefined : compareAnswers(fields, primary.payloads, payloads, tolerance);
      const candidateSide = against(candidate);
      const noiseSide = against(secondary);
      fields.specs.forEach((spec, index) => {
        const windows = this.#state.windowsOf(spec.path);
        const toCandidate = candidateSide?.[index];
        const toNoise = noiseSide?.[index];
        if (toCandidate !== undefined) windows.candidate.add(toCandidate);
        if (toNoise !== undefined) windows.noise.add(toNoise);
      });
      this.#deps.events.sample(candidateSide === undefined || noiseSide === undefined ? "incomplete" : "compared");
    } finally {
      sample.settle();
    }
  }

  /** The exchange gave nothing to compare with (cancelled, a cache hit, an error): frees the slot. */
  abandon(sample: ShadowSample): void {
    sample.settle();
    this.#deps.events.sample("incomplete");
  }

  report(): ShadowReport {
    const { pool, sampleRate, maxConcurrent } = this.#settings;
    return {
      pool,
      sampleRate,
      inFlight: this.#inFlight,
      maxConcurrent,
      fields: [...this.#state.fields].map(([field, { candidate, noise }]) => ({
        field,
        candidate: fieldStats(candidate.samples),
        noise: fieldStats(noise.samples),
        verdict: judgeField(candidate.samples, noise.samples, this.#settings),
      })),
    };
  }

  /** One side request to `pool`: the answer's payloads as the contract finds them, or undefined. */
  async #ask(sample: ShadowSample, pool: string, contract: Contract): Promise<readonly Payload[] | undefined> {
    const controller = new AbortController();
    let timedOut = false;
    let timer: unknown;
    try {
      // The wait ends at the timeout whether or not the sender heeds the abort: a slot is never held longer.
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        timer = this.#deps.timers.set(() => {
          timedOut = true;
          controller.abort();
          reject(new Error("timed out"));
        }, this.#settings.timeoutMs);
        this.#deps.send({ ...sample.request, pool, body: sample.body }, controller.signal).then(resolve, reject);
      });
      if (answer.status < 200 || answer.status > 299) {
        this.#deps.events.side(pool, "error");
        return undefined;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(answer.body);
      } catch {
        this.#deps.events.side(pool, "error");
        this.#deps.warn("shadow: a side answer is not JSON", { pool, status: answer.status });
        return undefined;
      }
      // The same reading of the body the contracts stage gave the client's answer.
      const { payloads } = contract.checkValue(parsed);
      this.#deps.events.side(pool, "ok");
      return payloads;
    } catch (error) {
      this.#deps.events.side(pool, timedOut ? "timeout" : "error");
      if (!timedOut) this.#deps.warn("shadow: a side request failed", { pool, err: (error as Error).message });
      return undefined;
    } finally {
      this.#deps.timers.clear(timer);
    }
  }
}
