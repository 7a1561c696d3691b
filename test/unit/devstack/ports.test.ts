import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import t from "tap";
import { freePort } from "../../../src/devstack/ports.js";

const ephemeralStart = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);

t.test("ports are bindable, distinct and below the ephemeral range outgoing connections use", async (t) => {
  const ports = await Promise.all(Array.from({ length: 200 }, () => freePort()));
  t.ok(
    ports.every((port) => port >= 10_000 && port < ephemeralStart),
    `all in [10000, ${ephemeralStart})`,
  );
  t.equal(new Set(ports).size, ports.length, "no port handed out twice");
  const first = ports[0] ?? 0;
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(first, "127.0.0.1", resolve);
  });
  t.pass(`port ${first} could be bound`);
  await new Promise((resolve) => server.close(resolve));
});
