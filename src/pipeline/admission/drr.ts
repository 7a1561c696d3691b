// Deficit round robin in cost units across tenants: a tenant sending large or many requests gets the
// same cost share per round as a tenant sending few small ones, and nobody starves. One queue per
// priority class; within a tenant, earliest dueAt first (the controller sets it; equal ones FIFO).

export interface DrrItem {
  readonly cost: number;
  readonly tenant: string;
  /** Order within the tenant's lane: earliest first, ties in arrival order. */
  readonly dueAt: number;
}

interface Lane<T> {
  readonly items: T[];
  deficit: number;
}

function laneCost(lane: Lane<DrrItem>): number {
  return lane.items.reduce((sum, item) => sum + item.cost, 0);
}

export class DrrQueue<T extends DrrItem> {
  readonly #lanes = new Map<string, Lane<T>>();
  /** Tenants with waiting items, in round-robin order. */
  readonly #ring: Lane<T>[] = [];
  /** Index in #ring of the tenant whose visit is in progress (or comes next). */
  #turn = 0;
  /** Whether the tenant at #turn already received its quantum for the current visit. */
  #credited = false;
  #length = 0;
  #cost = 0;

  constructor(readonly quantum: number) {}

  get length(): number {
    return this.#length;
  }

  /** Total cost of the waiting items. */
  get cost(): number {
    return this.#cost;
  }

  push(item: T): void {
    let lane = this.#lanes.get(item.tenant);
    if (lane === undefined) {
      lane = { items: [], deficit: 0 };
      this.#lanes.set(item.tenant, lane);
      // A newcomer joins at the end of the current round, like a tenant that just had its turn.
      this.#ring.splice(this.#turn, 0, lane);
      if (this.#ring.length > 1) this.#turn += 1;
    }
    // Lanes are short (bounded by the class's maxQueue): an insertion from the back is cheap.
    let index = lane.items.length;
    while (index > 0 && (lane.items[index - 1] as T).dueAt > item.dueAt) index -= 1;
    lane.items.splice(index, 0, item);
    this.#length += 1;
    this.#cost += item.cost;
  }

  /**
   * The item DRR serves next. Selecting it credits quanta to the tenants visited on the way, as DRR
   * would; repeated peeks without a shift return the same item.
   */
  peek(): T | undefined {
    const n = this.#ring.length;
    if (n === 0) return undefined;
    const current = this.#ring[this.#turn];
    const currentHead = current?.items[0];
    if (this.#credited && current !== undefined && currentHead !== undefined && current.deficit >= currentHead.cost) {
      return currentHead;
    }
    // Jump straight to the first visit at which some tenant's deficit covers its head item, instead
    // of looping one quantum at a time (costs may be thousands of quanta).
    const start = this.#credited ? 1 : 0;
    let bestVisit = Number.POSITIVE_INFINITY;
    let bestOffset = 0;
    for (let offset = 0; offset < n; offset++) {
      const lane = this.#laneAt(start + offset);
      const need = (lane.items[0]?.cost ?? 0) - lane.deficit;
      const visits = need <= 0 ? 1 : Math.ceil(need / this.quantum);
      const visit = (visits - 1) * n + offset;
      if (visit < bestVisit) {
        bestVisit = visit;
        bestOffset = offset;
      }
    }
    for (let offset = 0; offset < n && offset <= bestVisit; offset++) {
      const visits = Math.floor((bestVisit - offset) / n) + 1;
      this.#laneAt(start + offset).deficit += visits * this.quantum;
    }
    this.#turn = (this.#turn + start + bestOffset) % n;
    this.#credited = true;
    return this.#ring[this.#turn]?.items[0];
  }

  shift(): T | undefined {
    const item = this.peek();
    if (item === undefined) return undefined;
    const lane = this.#ring[this.#turn];
    if (lane === undefined) return undefined;
    lane.items.shift();
    lane.deficit -= item.cost;
    this.#taken(item, lane);
    return item;
  }

  /**
   * Cost DRR serves before a new item of `cost` from `tenant` would be: its own tenant's queue, and
   * of every other tenant's at most as much again (plus one quantum of rounding), since each round
   * gives every backlogged tenant the same share. What a newcomer waits for, unlike the whole queue
   * (a tenant flooding the queue must not make another tenant's wait look long).
   */
  costAhead(tenant: string, cost: number): number {
    const own = this.#lanes.get(tenant);
    const ownCost = own === undefined ? 0 : laneCost(own);
    const others = ownCost + cost + this.quantum;
    let ahead = ownCost;
    for (const lane of this.#ring) if (lane !== own) ahead += Math.min(laneCost(lane), others);
    return ahead;
  }

  /**
   * Makes room for `tenant` in a full queue: removes and returns the newest (latest due) item of the
   * tenant with the longest backlog, when that backlog is longer than `tenant`'s would be with the new
   * item. A full queue then sheds the tenant that filled it, not a tenant arriving with little queued
   * (longest-queue drop, as fair queueing does with its buffers). Undefined: `tenant` holds the
   * longest backlog itself, and the new item is the one to refuse.
   */
  evictForTenant(tenant: string): T | undefined {
    const ownLength = (this.#lanes.get(tenant)?.items.length ?? 0) + 1;
    let longest: Lane<T> | undefined;
    for (const lane of this.#ring) if (lane.items.length > (longest?.items.length ?? ownLength)) longest = lane;
    const item = longest?.items.at(-1);
    if (longest === undefined || item === undefined) return undefined;
    longest.items.pop();
    this.#taken(item, longest);
    return item;
  }

  /** Removes a waiting item (timeout, cancel). Returns false when it was not queued. */
  remove(item: T): boolean {
    const lane = this.#lanes.get(item.tenant);
    const index = lane?.items.indexOf(item) ?? -1;
    if (lane === undefined || index < 0) return false;
    lane.items.splice(index, 1);
    this.#taken(item, lane);
    return true;
  }

  /** Empties the queue, returning every waiting item. */
  drain(): T[] {
    const all = this.#ring.flatMap((lane) => lane.items);
    this.#lanes.clear();
    this.#ring.length = 0;
    this.#turn = 0;
    this.#credited = false;
    this.#length = 0;
    this.#cost = 0;
    return all;
  }

  #laneAt(offsetFromTurn: number): Lane<T> {
    const lane = this.#ring[(this.#turn + offsetFromTurn) % this.#ring.length];
    if (lane === undefined) throw new Error("DRR ring index out of range");
    return lane;
  }

  #taken(item: T, lane: Lane<T>): void {
    this.#length -= 1;
    this.#cost -= item.cost;
    if (lane.items.length > 0) return;
    // DRR: an idle tenant keeps no credit, so it cannot save up a burst.
    this.#lanes.delete(item.tenant);
    const index = this.#ring.indexOf(lane);
    this.#ring.splice(index, 1);
    if (index < this.#turn) {
      this.#turn -= 1;
    } else if (index === this.#turn) {
      this.#credited = false;
    }
    if (this.#turn >= this.#ring.length) this.#turn = 0;
  }
}
