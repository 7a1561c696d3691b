// The guard's overload signal, after Envoy's overload manager: the share of V8's heap limit in use.
// Past the threshold new exchanges are refused with a clean status, so the process sheds load
// before it dies of "JavaScript heap out of memory" and takes every open exchange with it.
import { getHeapStatistics } from "node:v8";

/** Heap statistics move with garbage collections, not per stream: read at most this often. */
const SAMPLE_MS = 100;

export interface HeapReading {
  readonly used_heap_size: number;
  readonly heap_size_limit: number;
}

export class HeapOverload {
  readonly #threshold: number;
  readonly #read: () => HeapReading;
  readonly #now: () => number;
  #sampledAt = Number.NEGATIVE_INFINITY;
  #ratio = 0;

  constructor(threshold: number, read: () => HeapReading = getHeapStatistics, now = () => performance.now()) {
    this.#threshold = threshold;
    this.#read = read;
    this.#now = now;
  }

  /** Used heap ÷ V8's heap limit, as last sampled. */
  get ratio(): number {
    const now = this.#now();
    if (now - this.#sampledAt >= SAMPLE_MS) {
      const heap = this.#read();
      this.#ratio = heap.used_heap_size / heap.heap_size_limit;
      this.#sampledAt = now;
    }
    return this.#ratio;
  }

  get overloaded(): boolean {
    return this.ratio > this.#threshold;
  }
}
