// Whether a queue in front of the upstream is a burst that will drain or the start of overload:
// what arrives against what the upstream completes, both in budget units and both decayed
// exponentially with the same time constant. At exactly the upstream's capacity the two match
// over a few seconds even while a burst queues; under overload arrivals outpace completions.

export class DemandGauge {
  #arrived = 0;
  #completed = 0;
  #at = 0;

  /** A request asked for admission, holding `charge` of the budget if admitted. */
  arrive(charge: number, now: number, timeConstantMs: number): void {
    this.#decay(now, timeConstantMs);
    this.#arrived += charge;
  }

  /** An admitted request ended, returning `charge`. */
  complete(charge: number, now: number, timeConstantMs: number): void {
    this.#decay(now, timeConstantMs);
    this.#completed += charge;
  }

  /** Arrivals ÷ completions lately; infinite before anything completed. */
  ratio(now: number, timeConstantMs: number): number {
    this.#decay(now, timeConstantMs);
    return this.#completed > 0 ? this.#arrived / this.#completed : Number.POSITIVE_INFINITY;
  }

  #decay(now: number, timeConstantMs: number): void {
    const factor = Math.exp(-Math.max(0, now - this.#at) / timeConstantMs);
    this.#arrived *= factor;
    this.#completed *= factor;
    this.#at = now;
  }
}
