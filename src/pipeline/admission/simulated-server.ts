// The simulation's model server (continuous batching, or slot-limited like the demo model), its
// request-size and service-time draws, and the capacity calibration they give.

import { gaussian, seededRandom } from "../../util/seeded-random.js";
import { MinHeap } from "./heap.js";

export interface ServerModel {
  /** In-flight cost the server batches at full speed; beyond it requests time-share. */
  readonly batchCost: number;
  /**
   * Slot-limited instead (a max batch size, like the demo model): at most this many requests run
   * at once whatever their size, the rest wait in the server's FIFO queue; batchCost is then unused.
   */
  readonly slots?: number;
  /** How much slower each request runs with a full batch than alone (0.3 = 30%). */
  readonly slowdownAtFull: number;
  /** Unloaded latency = overheadMs + msPerCost × cost, times per-request noise. */
  readonly overheadMs: number;
  readonly msPerCost: number;
  /** σ of the log-normal per-request service-time noise. */
  readonly noise: number;
}

export interface CostModel {
  /** Log-normal request sizes, rounded to whole cost units and clipped to [1, max]. */
  readonly median: number;
  readonly sigma: number;
  readonly max: number;
}

export const DEFAULT_SERVER: ServerModel = {
  batchCost: 400,
  slowdownAtFull: 0.3,
  overheadMs: 30,
  msPerCost: 40,
  noise: 0.15,
};
export const DEFAULT_COSTS: CostModel = { median: 6, sigma: 0.8, max: 48 };
/**
 * The demo model as `make bench-shed` runs it: 4 slots, 1 + 0.5·(k−1)/4 slowdown (1.375 full),
 * 60 ms per request plus ~0.25 ms per cost unit (cost ≈ 4 × max_tokens + prompt tokens).
 */
export const DEMO_SLOT_SERVER: ServerModel = {
  batchCost: 0,
  slots: 4,
  slowdownAtFull: 0.375,
  overheadMs: 60,
  msPerCost: 0.25,
  noise: 0.1,
};
export const DEMO_COSTS: CostModel = { median: 480, sigma: 0.8, max: 4_500 };

interface Job {
  readonly cost: number;
  readonly serviceMs: number;
  readonly done: () => void;
}

interface RunningJob extends Job {
  readonly finishAt: number;
}

/**
 * Processor sharing with one rate for every running job, so progress is a single virtual-work
 * clock and jobs complete in order of the virtual work at which they finish. A slot-limited server
 * runs at most `slots` jobs and queues the rest in arrival order.
 */
export class BatchingServer {
  #work = 0;
  #lastMs = 0;
  #cost = 0;
  #batchCost: number;
  #slots: number | undefined;
  readonly #jobs = new MinHeap<RunningJob>((a, b) => a.finishAt < b.finishAt);
  readonly #waiting: Job[] = [];
  #waitingHead = 0;

  constructor(readonly model: ServerModel) {
    this.#batchCost = model.batchCost;
    this.#slots = model.slots;
  }

  /** Cost of every job on the server, running or queued. */
  get cost(): number {
    return this.#cost;
  }

  /** Jobs on the server, running or queued. */
  get count(): number {
    return this.#jobs.size + this.#waiting.length - this.#waitingHead;
  }

  get running(): number {
    return this.#jobs.size;
  }

  #rate(): number {
    const { slowdownAtFull } = this.model;
    if (this.#slots !== undefined) {
      const fill = this.#slots <= 1 ? 0 : Math.max(0, this.#jobs.size - 1) / (this.#slots - 1);
      return 1 / (1 + slowdownAtFull * fill);
    }
    const full = this.#batchCost;
    if (this.#cost <= full) return 1 / (1 + (slowdownAtFull * this.#cost) / full);
    return full / (this.#cost * (1 + slowdownAtFull));
  }

  advance(nowMs: number): void {
    this.#work += (nowMs - this.#lastMs) * this.#rate();
    this.#lastMs = nowMs;
  }

  setCapacity(factor: number, nowMs: number): void {
    this.advance(nowMs);
    this.#batchCost = this.model.batchCost * factor;
    if (this.model.slots !== undefined) this.#slots = Math.max(1, Math.round(this.model.slots * factor));
    this.#fillSlots();
  }

  start(cost: number, serviceMs: number, nowMs: number, done: () => void): void {
    this.advance(nowMs);
    this.#cost += cost;
    this.#waiting.push({ cost, serviceMs, done });
    this.#fillSlots();
  }

  #fillSlots(): void {
    while (this.#waitingHead < this.#waiting.length && (this.#slots === undefined || this.#jobs.size < this.#slots)) {
      const job = this.#waiting[this.#waitingHead++] as Job;
      this.#jobs.push({ ...job, finishAt: this.#work + job.serviceMs });
    }
    if (this.#waitingHead === this.#waiting.length) {
      this.#waiting.length = 0;
      this.#waitingHead = 0;
    }
  }

  nextCompletionMs(): number {
    const job = this.#jobs.peek();
    if (job === undefined) return Number.POSITIVE_INFINITY;
    return this.#lastMs + Math.max(0, job.finishAt - this.#work) / this.#rate();
  }

  completeNext(nowMs: number): void {
    this.advance(nowMs);
    const job = this.#jobs.pop();
    if (job === undefined) return;
    this.#cost = this.count === 0 ? 0 : this.#cost - job.cost;
    this.#fillSlots();
    job.done();
  }
}

export function drawCost(random: () => number, costs: CostModel): number {
  return Math.min(costs.max, Math.max(1, Math.round(costs.median * Math.exp(costs.sigma * gaussian(random)))));
}

export function serviceMs(cost: number, server: ServerModel, random: () => number): number {
  return (
    (server.overheadMs + server.msPerCost * cost) *
    Math.exp(server.noise * gaussian(random) - (server.noise * server.noise) / 2)
  );
}

/**
 * Unloaded work (ms) per second the server completes kept saturated (closed loop at 1.5 × batch or slots) with the
 * cost model's mix. Large requests linger longer in a time-shared batch, so this is measured, not
 * derived.
 */
export function calibrateCapacity(server: ServerModel, costs: CostModel, seed = 7): number {
  const random = seededRandom(seed);
  const model = new BatchingServer(server);
  const warmupMs = 20_000;
  const untilMs = 80_000;
  let completedWork = 0;
  let now = 0;
  const saturated = (): boolean =>
    server.slots === undefined ? model.cost >= 1.5 * server.batchCost : model.count >= 1.5 * server.slots;
  const refill = (): void => {
    while (!saturated()) {
      const cost = drawCost(random, costs);
      const work = serviceMs(cost, server, random);
      model.start(cost, work, now, () => {
        if (now >= warmupMs) completedWork += work;
      });
    }
  };
  refill();
  while (now < untilMs) {
    now = model.nextCompletionMs();
    model.completeNext(now);
    refill();
  }
  return (completedWork / (untilMs - warmupMs)) * 1000;
}

export function meanCost(costs: CostModel, seed = 11): number {
  const random = seededRandom(seed);
  const draws = 20_000;
  let sum = 0;
  for (let i = 0; i < draws; i++) sum += drawCost(random, costs);
  return sum / draws;
}
