import { readFileSync } from "node:fs";
import { createServer } from "node:net";

// The port is released before the child process binds it. A port the OS hands out for listen(0)
// comes from the ephemeral range, which every outgoing connection (h2load, Envoy's upstream
// pools, test clients) also draws from, so on a busy machine one of them could take it in that
// gap (EADDRINUSE). Ports are therefore picked at random below the ephemeral range, where no
// connect() lands, and checked free by binding them.
const FALLBACK_EPHEMERAL_START = 32_768;
const LOWEST_PORT = 10_000;

function ephemeralRangeStart(): number {
  try {
    const [start] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/);
    const value = Number(start);
    return Number.isInteger(value) && value > LOWEST_PORT + 1_000 ? value : FALLBACK_EPHEMERAL_START;
  } catch {
    return FALLBACK_EPHEMERAL_START;
  }
}

const candidatesEnd = ephemeralRangeStart();
// A stack picks several ports before its processes bind any: never hand one out twice.
const handedOut = new Set<number>();

function tryBind(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(undefined));
    server.listen(port, "127.0.0.1", () => {
      const address = server.address();
      const bound = typeof address === "object" && address !== null ? address.port : undefined;
      server.close(() => resolve(bound));
    });
  });
}

/** A currently free loopback TCP port outside the ephemeral range (tests must not share fixed ports). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = LOWEST_PORT + Math.floor(Math.random() * (candidatesEnd - LOWEST_PORT));
    if (handedOut.has(port)) continue;
    // Reserved before the bind check: a concurrent call that drew the same port while this one
    // waited could otherwise bind it after this check closed, and hand it out a second time.
    handedOut.add(port);
    const bound = await tryBind(port);
    if (bound === undefined) {
      handedOut.delete(port);
      continue;
    }
    return bound;
  }
  // Crowded low range: let the OS pick (the original race, but never a failure to start).
  const bound = await tryBind(0);
  if (bound === undefined) throw new Error("no free loopback TCP port");
  handedOut.add(bound);
  return bound;
}
