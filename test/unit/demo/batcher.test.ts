import t from "tap";
import { Batcher, type BatcherClock, type JobEnd } from "../../../src/demo/batcher.js";

/** Virtual time: timers fire only when the test advances the clock, so finish times are exact. */
class VirtualClock implements BatcherClock {
  time = 0;
  #timers: { at: number; fn: () => void }[] = [];

  readonly now = (): number => this.time;

  readonly schedule = (delayMs: number, fn: () => void): (() => void) => {
    const timer = { at: this.time + delayMs, fn };
    this.#timers.push(timer);
    return () => {
      this.#timers = this.#timers.filter((pending) => pending !== timer);
    };
  };

  get pendingTimers(): number {
    return this.#timers.length;
  }

  async advanceTo(target: number): Promise<void> {
    for (;;) {
      const due = this.#timers.filter((timer) => timer.at <= target).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      this.#timers = this.#timers.filter((timer) => timer !== due);
      this.time = due.at;
      due.fn();
      await flush();
    }
    this.time = target;
    await flush();
  }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** Starts a job and records when (in virtual ms) and how it ended. */
function track(
  batcher: Batcher,
  clock: VirtualClock,
  ends: Record<string, [JobEnd, number]>,
  name: string,
  workMs: number,
  signal?: AbortSignal,
): void {
  void batcher.run(workMs, signal).then((end) => {
    ends[name] = [end, clock.time];
  });
}

t.test("unlimited capacity serves every job in its own time, with no slowdown", async (t) => {
  const clock = new VirtualClock();
  const batcher = new Batcher({ capacity: 0, batchPenalty: 0.5 }, clock);
  const ends: Record<string, [JobEnd, number]> = {};
  track(batcher, clock, ends, "a", 10);
  track(batcher, clock, ends, "b", 20);
  track(batcher, clock, ends, "c", 30);
  await flush();
  t.equal(batcher.active, 3);
  await clock.advanceTo(100);
  t.same(ends, { a: ["served", 10], b: ["served", 20], c: ["served", 30] });
  t.equal(batcher.maxActive, 3);
});

t.test("a full batch slows each request by 1 + penalty·(k−1)/C and queues the excess FIFO", async (t) => {
  const clock = new VirtualClock();
  const batcher = new Batcher({ capacity: 2, batchPenalty: 0.5 }, clock);
  const ends: Record<string, [JobEnd, number]> = {};
  track(batcher, clock, ends, "a", 100);
  track(batcher, clock, ends, "b", 100);
  track(batcher, clock, ends, "c", 100);
  await flush();
  t.equal(batcher.active, 2);
  t.equal(batcher.waiting, 1);
  await clock.advanceTo(1000);
  // Two share the batch at rate 1/(1 + 0.5·1/2) = 0.8, so 100 ms of work takes 125 ms; c then runs alone.
  t.same(ends, { a: ["served", 125], b: ["served", 125], c: ["served", 225] });
  t.equal(batcher.maxActive, 2);
});

t.test("work is re-rated when the batch size changes mid-request", async (t) => {
  const clock = new VirtualClock();
  const batcher = new Batcher({ capacity: 2, batchPenalty: 1 }, clock);
  const ends: Record<string, [JobEnd, number]> = {};
  track(batcher, clock, ends, "a", 100);
  await clock.advanceTo(50);
  track(batcher, clock, ends, "b", 100);
  await clock.advanceTo(1000);
  // a: 50 ms alone, then 50 ms of work at rate 2/3 → 125. b: 50 of work by 125, the rest alone → 175.
  t.same(ends, { a: ["served", 125], b: ["served", 175] });
});

t.test("with one slot, requests finish in arrival order even when later ones are shorter", async (t) => {
  const clock = new VirtualClock();
  const batcher = new Batcher({ capacity: 1, batchPenalty: 0.5 }, clock);
  const ends: Record<string, [JobEnd, number]> = {};
  track(batcher, clock, ends, "long", 50);
  track(batcher, clock, ends, "short1", 10);
  track(batcher, clock, ends, "short2", 10);
  await clock.advanceTo(1000);
  t.same(ends, { long: ["served", 50], short1: ["served", 60], short2: ["served", 70] });
  t.equal(batcher.maxActive, 1);
});

t.test("aborting a queued job removes it without using a slot", async (t) => {
  const clock = new VirtualClock();
  const batcher = new Batcher({ capacity: 1, batchPenalty: 0.5 }, clock);
  const ends: Record<string, [JobEnd, number]> = {};
  const leaving = new AbortController();
  track(batcher, clock, ends, "a", 100);
  track(batcher, clock, ends, "b", 100, leaving.signal);
  track(batcher, clock, ends, "c", 10);
  await clock.advanceTo(10);
  leaving.abort();
  await flush();
  await clock.advanceTo(1000);
  t.same(ends, { a: ["served", 100], b: ["aborted", 10], c: ["served", 110] });
});

t.test("aborting an active job frees its slot at once", async (t) => {
  const clock = new VirtualClock();
  const batcher = new Batcher({ capacity: 1, batchPenalty: 0.5 }, clock);
  const ends: Record<string, [JobEnd, number]> = {};
  const leaving = new AbortController();
  track(batcher, clock, ends, "a", 100, leaving.signal);
  track(batcher, clock, ends, "b", 10);
  await clock.advanceTo(30);
  leaving.abort();
  await flush();
  await clock.advanceTo(1000);
  t.same(ends, { a: ["aborted", 30], b: ["served", 40] });
});

t.test("an already aborted signal never enters the batch", async (t) => {
  const batcher = new Batcher({ capacity: 1, batchPenalty: 0.5 }, new VirtualClock());
  t.equal(await batcher.run(10, AbortSignal.abort()), "aborted");
  t.equal(batcher.maxActive, 0);
});

t.test("raising capacity admits waiting jobs from that moment", async (t) => {
  const clock = new VirtualClock();
  const batcher = new Batcher({ capacity: 1, batchPenalty: 0 }, clock);
  const ends: Record<string, [JobEnd, number]> = {};
  track(batcher, clock, ends, "a", 100);
  track(batcher, clock, ends, "b", 100);
  await clock.advanceTo(20);
  batcher.setLimits({ capacity: 2, batchPenalty: 0 });
  await clock.advanceTo(1000);
  t.same(ends, { a: ["served", 100], b: ["served", 120] });
});

t.test("zero work passes through a single slot without waiting for a timer", async (t) => {
  const clock = new VirtualClock();
  const batcher = new Batcher({ capacity: 1, batchPenalty: 0.5 }, clock);
  const results = await Promise.all([batcher.run(0), batcher.run(0), batcher.run(0)]);
  t.same(results, ["served", "served", "served"]);
  t.equal(clock.pendingTimers, 0);
  t.equal(batcher.active, 0);
});

t.test("close ends every job as aborted and leaves no timer behind", async (t) => {
  const clock = new VirtualClock();
  const batcher = new Batcher({ capacity: 1, batchPenalty: 0.5 }, clock);
  const ends: Record<string, [JobEnd, number]> = {};
  track(batcher, clock, ends, "a", 100);
  track(batcher, clock, ends, "b", 100);
  await flush();
  batcher.close();
  await flush();
  t.same(ends, { a: ["aborted", 0], b: ["aborted", 0] });
  t.equal(clock.pendingTimers, 0);
});

t.test("resetPeak restarts the high-water mark from the current batch", async (t) => {
  const clock = new VirtualClock();
  const batcher = new Batcher({ capacity: 0, batchPenalty: 0 }, clock);
  const ends: Record<string, [JobEnd, number]> = {};
  track(batcher, clock, ends, "a", 10);
  track(batcher, clock, ends, "b", 20);
  await clock.advanceTo(15);
  batcher.resetPeak();
  t.equal(batcher.maxActive, 1);
});
