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
