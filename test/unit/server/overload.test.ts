// The heap overload signal: used ÷ limit against the threshold, sampled at most every 100 ms.
import t from "tap";
import { HeapOverload } from "../../../src/server/overload.js";

t.test("overloaded above the threshold, read at most every 100 ms", async (t) => {
  let clock = 0;
  let used = 50;
  let reads = 0;
  const heap = new HeapOverload(
    0.9,
    () => {
      reads++;
      return { used_heap_size: used, heap_size_limit: 100 };
    },
    () => clock,
  );
  t.equal(heap.overloaded, false);
  t.equal(heap.ratio, 0.5);
  used = 95;
  clock = 99;
  t.equal(heap.overloaded, false, "not re-read within 100 ms");
  clock = 100;
  t.equal(heap.overloaded, true);
  t.equal(reads, 2);
});

t.test("by default it reads V8's own heap", async (t) => {
  const ratio = new HeapOverload(0.9).ratio;
  t.ok(ratio > 0 && ratio < 1, `ratio ${ratio}`);
});
