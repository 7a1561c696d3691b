// A retry budget per domain (after Finagle's RetryBudget and gRPC's retry throttling): every first
// attempt admitted deposits `ratio` of a retry, time adds `minPerSecond`, the balance is capped at
// `burst`. A retry that would have to wait for budget withdraws one; with none left it is answered at
// once. So while the upstream is saturated, clients that retry (immediately, or after their own
// timeout while the first attempt still runs upstream) cannot multiply the work that reaches it.
import type { RetriesConfig } from "./config.js";

export class RetryBudget {
  readonly #config: RetriesConfig;
  #balance: number;
  #updatedAt: number | undefined;

  constructor(config: RetriesConfig) {
    this.#config = config;
    this.#balance = config.burst;
  }

  /** A first attempt was admitted: it earns a share of a retry. */
  deposit(now: number): void {
    this.#refill(now);
    this.#balance = Math.min(this.#config.burst, this.#balance + this.#config.ratio);
  }

  /** Spends one retry if the balance allows it. */
  tryWithdraw(now: number): boolean {
    this.#refill(now);
    if (this.#balance < 1) return false;
    this.#balance -= 1;
    return true;
  }

  #refill(now: number): void {
    const elapsedMs = this.#updatedAt === undefined ? 0 : Math.max(0, now - this.#updatedAt);
    this.#updatedAt = now;
    this.#balance = Math.min(this.#config.burst, this.#balance + (elapsedMs / 1000) * this.#config.minPerSecond);
  }
}
