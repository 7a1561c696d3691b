// Bytes held against a limit, shared by whoever draws on it (the streams of a connection, every
// stream of the server). Refusing the draw that would pass the limit is what bounds the process.

export class ByteBudget {
  readonly limit: number;
  readonly #oneAlwaysFits: boolean;
  #used = 0;

  /**
   * oneAlwaysFits: a draw on an empty budget is granted whatever its size. Right for queues, which
   * bound waiting rather than size (a large reply must still go out once); wrong for a memory
   * budget, whose limit is absolute.
   */
  constructor(limit: number, options: { oneAlwaysFits?: boolean } = {}) {
    this.limit = limit;
    this.#oneAlwaysFits = options.oneAlwaysFits === true;
  }

  get used(): number {
    return this.#used;
  }

  /** Takes bytes if they fit; false (and nothing taken) if not. */
  take(bytes: number): boolean {
    const fits = this.#used + bytes <= this.limit || (this.#oneAlwaysFits && this.#used === 0);
    if (fits) this.#used += bytes;
    return fits;
  }

  give(bytes: number): void {
    this.#used -= bytes;
  }
}

/**
 * One holder's part of a shared budget (a stream's), given back whole when the holder goes. The
 * holder may have a limit of its own, a queue's: one draw always fits when it holds nothing.
 */
export class BudgetShare {
  readonly #shared: ByteBudget;
  readonly #ownLimit: number;
  #used = 0;
  #closed = false;

  constructor(shared: ByteBudget, ownLimit = Number.POSITIVE_INFINITY) {
    this.#shared = shared;
    this.#ownLimit = ownLimit;
  }

  /** Takes bytes, or says which limit refused them (nothing taken then). */
  take(bytes: number): "own" | "shared" | undefined {
    if (this.#used > 0 && this.#used + bytes > this.#ownLimit) return "own";
    if (!this.#shared.take(bytes)) return "shared";
    this.#used += bytes;
    return undefined;
  }

  give(bytes: number): void {
    // After close() the share was given back at once; a late give would count its bytes twice.
    if (this.#closed) return;
    this.#used -= bytes;
    this.#shared.give(bytes);
  }

  close(): void {
    this.#shared.give(this.#used);
    this.#used = 0;
    this.#closed = true;
  }
}
