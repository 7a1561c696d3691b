import t from "tap";
import { DrrQueue } from "../../../../src/pipeline/admission/drr.js";

interface Item {
  readonly cost: number;
  readonly tenant: string;
  readonly id: string;
  readonly dueAt: number;
}

t.test("a heavy tenant and a light tenant get equal cost shares per round", async (t) => {
  const queue = new DrrQueue<Item>(10);
  // heavy: 20 requests of cost 10; light: 50 requests of cost 2, all queued before any service.
  for (let i = 0; i < 20; i++) queue.push({ cost: 10, tenant: "heavy", id: `h${i}`, dueAt: 0 });
  for (let i = 0; i < 50; i++) queue.push({ cost: 2, tenant: "light", id: `l${i}`, dueAt: 0 });
  let heavyCost = 0;
  let lightCost = 0;
  // Serve 100 cost units: both tenants are backlogged throughout.
  while (heavyCost + lightCost < 100) {
    const item = queue.shift();
    if (item === undefined) break;
    if (item.tenant === "heavy") heavyCost += item.cost;
    else lightCost += item.cost;
  }
  t.ok(Math.abs(heavyCost - lightCost) <= 10, `cost shares within one quantum: heavy ${heavyCost}, light ${lightCost}`);
  t.equal(queue.length, 70 - heavyCost / 10 - lightCost / 2);
});

t.test("FIFO within a tenant, and the light tenant is not stuck behind the heavy backlog", async (t) => {
  const queue = new DrrQueue<Item>(4);
  for (let i = 0; i < 5; i++) queue.push({ cost: 8, tenant: "heavy", id: `h${i}`, dueAt: 0 });
  queue.push({ cost: 1, tenant: "light", id: "l0", dueAt: 0 });
  const order = [];
  for (let item = queue.shift(); item !== undefined; item = queue.shift()) order.push(item.id);
  t.same(
    order.filter((id) => id.startsWith("h")),
    ["h0", "h1", "h2", "h3", "h4"],
  );
  t.ok(order.indexOf("l0") <= 1, `light served within the first round: ${order.join(",")}`);
});

t.test("peek is stable until shift; remove keeps accounting", async (t) => {
  const queue = new DrrQueue<Item>(1);
  const a = { cost: 5, tenant: "a", id: "a", dueAt: 0 };
  const b = { cost: 3, tenant: "b", id: "b", dueAt: 0 };
  const c = { cost: 2, tenant: "b", id: "c", dueAt: 0 };
  queue.push(a);
  queue.push(b);
  queue.push(c);
  const first = queue.peek();
  t.equal(queue.peek(), first);
  t.equal(queue.cost, 10);
  t.ok(queue.remove(b));
  t.notOk(queue.remove(b), "a second remove is a no-op");
  t.equal(queue.length, 2);
  t.equal(queue.cost, 7);
  const rest = [queue.shift()?.id, queue.shift()?.id].sort();
  t.same(rest, ["a", "c"]);
  t.equal(queue.length, 0);
  t.equal(queue.cost, 0);
  t.equal(queue.shift(), undefined);
});

t.test("drain empties every tenant", async (t) => {
  const queue = new DrrQueue<Item>(2);
  queue.push({ cost: 1, tenant: "a", id: "1", dueAt: 0 });
  queue.push({ cost: 1, tenant: "b", id: "2", dueAt: 0 });
  t.equal(queue.drain().length, 2);
  t.equal(queue.length, 0);
  t.equal(queue.peek(), undefined);
});

t.test("within a tenant, earliest dueAt first; equal dueAt in arrival order", async (t) => {
  const queue = new DrrQueue<Item>(100);
  queue.push({ cost: 1, tenant: "a", id: "late", dueAt: 50 });
  queue.push({ cost: 1, tenant: "a", id: "first-at-10", dueAt: 10 });
  queue.push({ cost: 1, tenant: "a", id: "second-at-10", dueAt: 10 });
  queue.push({ cost: 1, tenant: "a", id: "latest", dueAt: 90 });
  const order: string[] = [];
  for (let item = queue.shift(); item !== undefined; item = queue.shift()) order.push(item.id);
  t.same(order, ["first-at-10", "second-at-10", "late", "latest"]);
});

t.test("cost ahead of a newcomer: its own tenant's backlog, and as much again of each other's", async (t) => {
  const queue = new DrrQueue<Item>(1);
  for (let i = 0; i < 100; i++) queue.push({ cost: 1, tenant: "flood", id: `f${i}`, dueAt: 0 });
  queue.push({ cost: 1, tenant: "b", id: "b0", dueAt: 0 });
  t.equal(queue.cost, 101);
  t.equal(queue.costAhead("c", 1), 1 + 2, "a new tenant: b's item and two of the flood's");
  t.equal(queue.costAhead("b", 1), 1 + 3, "b's own item, then as much again of the flood's");
  t.equal(queue.costAhead("flood", 1), 100 + 1, "the flooding tenant waits behind its own backlog");
});

t.test("a full queue makes room from the longest backlog, never from a shorter one", async (t) => {
  const queue = new DrrQueue<Item>(1);
  for (let i = 0; i < 3; i++) queue.push({ cost: 1, tenant: "flood", id: `f${i}`, dueAt: i });
  queue.push({ cost: 1, tenant: "b", id: "b0", dueAt: 0 });
  t.equal(queue.evictForTenant("c")?.id, "f2", "a newcomer displaces the flood's latest item");
  t.equal(queue.length, 3);
  t.equal(queue.cost, 3);
  t.equal(queue.evictForTenant("b"), undefined, "b's second item would tie the flood's two: refuse it instead");
  t.equal(queue.evictForTenant("flood"), undefined, "the longest backlog is refused its own new item");
  t.equal(queue.evictForTenant("c")?.id, "f1", "another newcomer: the flood's two are still the longest");
  t.equal(queue.evictForTenant("c"), undefined, "no backlog is longer than the newcomer's would be");
  t.same([queue.shift()?.id, queue.shift()?.id, queue.shift()], ["f0", "b0", undefined]);
});
