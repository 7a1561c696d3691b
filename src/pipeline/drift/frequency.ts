// A frequency table of one categorical field (enum, `in` list, boolean): counts per value, bounded
// by maxCategories (the schema bounds enum and `in` fields already; the cap keeps a model that
// invents values from growing the table). Later values count as OTHER.
export const OTHER_CATEGORY = "other";

/** A table as plain JSON values: [value, count] pairs. */
export interface SerialisedFrequencies {
  readonly maxCategories: number;
  readonly counts: readonly (readonly [string, number])[];
}

export class FrequencyTable {
  readonly #counts = new Map<string, number>();
  #total = 0;

  constructor(readonly maxCategories: number) {}

  get total(): number {
    return this.#total;
  }

  add(value: string, count = 1): void {
    const key = this.#counts.has(value) || this.#counts.size < this.maxCategories ? value : OTHER_CATEGORY;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + count);
    this.#total += count;
  }

  count(value: string): number {
    return this.#counts.get(value) ?? 0;
  }

  values(): IterableIterator<string> {
    return this.#counts.keys();
  }

  /** Share of the most frequent value. */
  modeShare(): number {
    if (this.#total === 0) return 0;
    let fullest = 0;
    for (const count of this.#counts.values()) if (count > fullest) fullest = count;
    return fullest / this.#total;
  }

  merge(other: FrequencyTable): void {
    for (const [value, count] of other.#counts) this.add(value, count);
  }

  toJSON(): SerialisedFrequencies {
    return { maxCategories: this.maxCategories, counts: [...this.#counts] };
  }

  static fromJSON(data: SerialisedFrequencies): FrequencyTable {
    const table = new FrequencyTable(data.maxCategories);
    for (const [value, count] of data.counts) table.add(value, count);
    return table;
  }
}
