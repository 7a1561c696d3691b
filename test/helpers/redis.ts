// Starts real redis-servers (Debian package) on free loopback ports for a test, with persistence
// off: one server, a Redis Cluster (masters with a replica each), or a master and replica watched
// by sentinels. Servers are SIGKILLed when the test process exits, however it exits.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { waitUntil } from "../../src/devstack/process.js";

const REDIS_SERVER = "/usr/bin/redis-server";
const REDIS_CLI = "/usr/bin/redis-cli";
const READY_TIMEOUT_MS = 5_000;

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** SIGKILL, as a crash would: in-flight commands get no reply, the data is gone. */
  stop(): Promise<void>;
  /** Starts again on the same port (empty, since nothing is persisted). */
  restart(): Promise<void>;
  /** SIGSTOP: the socket stays open but nothing answers, as with a hung or overloaded server. */
  pause(): void;
  resume(): void;
}

const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/** `port`: one of freeLoopbackPorts(), when several servers start at once. */
export async function startRedis(extraArgs: readonly string[] = [], port?: number): Promise<RedisServer> {
  port ??= (await freeLoopbackPorts(1))[0] as number;
  let child = await launch(port, extraArgs);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      await kill(child);
    },
    async restart() {
      await kill(child);
      child = await launch(port, extraArgs);
    },
    pause() {
      child.kill("SIGSTOP");
    },
    resume() {
      child.kill("SIGCONT");
    },
  };
}

async function launch(port: number, extraArgs: readonly string[]): Promise<ChildProcess> {
  const child = spawn(
    REDIS_SERVER,
    [
      ...extraArgs,
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      // A replica's first sync starts at once, not after the 5 s a master waits for more replicas.
      "--repl-diskless-sync-delay",
      "0",
      "--daemonize",
      "no",
      "--loglevel",
      "warning",
    ],
    { stdio: "ignore" },
  );
  running.add(child);
  child.once("exit", () => running.delete(child));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await answersPing(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`redis-server on port ${port} did not start`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGCONT");
  child.kill("SIGKILL");
  await exited;
}

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    let reply = "";
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => finish(false));
    socket.once("error", () => finish(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      reply += chunk.toString("latin1");
      if (reply.includes("\r\n")) finish(reply.startsWith("+PONG"));
    });
  });
}

/**
 * `count` distinct free ports: all held open until each is known, so servers started side by side
 * cannot be handed the same one (the kernel may give a just-closed port out again).
 */
async function freeLoopbackPorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  try {
    return await Promise.all(
      servers.map(
        (server) =>
          new Promise<number>((resolve, reject) => {
            server.once("error", reject);
            server.listen(0, "127.0.0.1", () => {
              const address = server.address();
              if (typeof address === "object" && address !== null) resolve(address.port);
              else reject(new Error("no port"));
            });
          }),
      ),
    );
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

/** Starts every server or none: one that fails to start stops the others, so none outlives the test. */
async function startAll(starts: readonly (() => Promise<RedisServer>)[]): Promise<RedisServer[]> {
  const results = await Promise.allSettled(starts.map((start) => start()));
  const started = results.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  const failed = results.find((result) => result.status === "rejected");
  if (failed === undefined) return started;
  await Promise.all(started.map((server) => server.stop()));
  throw failed.reason;
}

/** A shared Redis a stage's test runs against, as the stage's `redis` section names it. */
export interface SharedRedisUnderTest {
  readonly section: { readonly url: string } | { readonly cluster: { readonly nodes: readonly string[] } };
  /** Every server gone at once. */
  stop(): Promise<void>;
}

/** The kinds of shared Redis whose behaviour a stage's sharing tests must show alike. */
export const sharedRedisKinds: readonly { readonly name: string; start(): Promise<SharedRedisUnderTest> }[] = [
  {
    name: "one Redis",
    async start() {
      const server = await startRedis();
      return { section: { url: server.url }, stop: () => server.stop() };
    },
  },
  {
    name: "a Redis Cluster",
    async start() {
      const cluster = await startRedisCluster();
      return { section: { cluster: { nodes: cluster.urls } }, stop: () => cluster.stop() };
    },
  },
];

const execCli = promisify(execFile);

/** redis-cli against one server; resolves to its raw reply. */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await execCli(REDIS_CLI, ["-h", "127.0.0.1", "-p", String(port), ...args], { timeout: 10_000 });
  return stdout;
}

/** How many keys match `pattern` on the server at `port` (its own keys only, on a cluster). */
export async function keyCount(port: number, pattern: string): Promise<number> {
  const reply = await redisCli(port, "--scan", "--pattern", pattern);
  return reply.split("\n").filter((line) => line !== "").length;
}

/** A node as a cluster member sees it (CLUSTER NODES). */
export interface ClusterNodeView {
  readonly id: string;
  /** A replica's master's id. */
  readonly masterId: string | undefined;
  readonly port: number;
  readonly role: "master" | "replica";
  /** Marked failed by the cluster. */
  readonly failed: boolean;
  /** Slot ranges served (masters only). */
  readonly slots: number;
}

export interface RedisCluster {
  /** redis:// URL of every node: the seeds a client is given. */
  readonly urls: readonly string[];
  readonly servers: readonly RedisServer[];
  /** The cluster as a live node sees it. */
  view(): Promise<ClusterNodeView[]>;
  /** SIGKILL of one node, as a crash would. */
  kill(port: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A Redis Cluster of `masters` masters with one replica each, on loopback. nodeTimeoutMs is how
 * long a master may be silent before its replica takes over (failover then takes about twice it).
 */
export async function startRedisCluster(masters = 3, nodeTimeoutMs = 2_000): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), "guard-redis-cluster-"));
  const ports = await freeLoopbackPorts(masters * 4);
  const nodes = Array.from({ length: masters * 2 }, (_, index) => ({
    port: ports[2 * index] as number,
    // The bus port is its own free port: port + 10000, the default, may be taken or out of range.
    busPort: ports[2 * index + 1] as number,
  }));
  const started = await startAll(
    nodes.map(
      ({ port, busPort }, index) =>
        () =>
          startRedis(
            [
              "--cluster-enabled",
              "yes",
              "--cluster-config-file",
              join(dir, `nodes-${index}.conf`),
              "--cluster-port",
              String(busPort),
              "--cluster-node-timeout",
              String(nodeTimeoutMs),
              // A replica takes over however long it was cut off: the test kills masters on purpose.
              "--cluster-replica-validity-factor",
              "0",
              "--dir",
              dir,
            ],
            port,
          ),
    ),
  );
  const servers = started;
  const alive = new Set(servers);
  const cluster: RedisCluster = {
    urls: servers.map((server) => server.url),
    servers,
    async view() {
      for (const server of alive) {
        try {
          return parseClusterNodes(await redisCli(server.port, "CLUSTER", "NODES"));
        } catch {}
      }
      throw new Error("no cluster node answers");
    },
    async kill(port) {
      const server = servers.find((candidate) => candidate.port === port);
      if (server === undefined) throw new Error(`no cluster node on port ${port}`);
      alive.delete(server);
      await server.stop();
    },
    async stop() {
      await Promise.all(servers.map((server) => server.stop()));
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    // What `redis-cli --cluster create --cluster-replicas 1` does, without its one-second waits
    // (seconds per test): the slots split over the first `masters` nodes, each with its own config
    // epoch, every node introduced to the first, each other node the replica of one master.
    const cli = (index: number, ...args: string[]) => redisCli(servers[index]?.port ?? 0, ...args);
    const slotsPerMaster = Math.ceil(16_384 / masters);
    await Promise.all(
      servers.map(async (_, index) => {
        await cli(index, "CLUSTER", "SET-CONFIG-EPOCH", String(index + 1));
        if (index < masters) {
          const first = index * slotsPerMaster;
          const last = Math.min(16_383, first + slotsPerMaster - 1);
          await cli(index, "CLUSTER", "ADDSLOTSRANGE", String(first), String(last));
        }
      }),
    );
    await Promise.all(
      nodes.slice(1).map(({ port, busPort }) => cli(0, "CLUSTER", "MEET", "127.0.0.1", String(port), String(busPort))),
    );
    await waitUntil(
      "every cluster node to know every other",
      async () => {
        const views = await Promise.all(servers.map((_, index) => cli(index, "CLUSTER", "NODES")));
        return views.every((text) => parseClusterNodes(text).length === servers.length);
      },
      30_000,
    );
    const ids = await Promise.all(
      servers.slice(0, masters).map(async (_, index) => (await cli(index, "CLUSTER", "MYID")).trim()),
    );
    await Promise.all(ids.map((id, index) => cli(masters + index, "CLUSTER", "REPLICATE", id)));
    await waitUntil(
      "the cluster to be ready",
      async () => {
        const nodes = await cluster.view();
        const replicasLinked = await Promise.all(
          nodes
            .filter((node) => node.role === "replica")
            .map(async (node) => (await redisCli(node.port, "INFO", "replication")).includes("master_link_status:up")),
        );
        const states = await Promise.all(servers.map((server) => redisCli(server.port, "CLUSTER", "INFO")));
        return (
          nodes.filter((node) => node.role === "master" && node.slots > 0).length === masters &&
          replicasLinked.length === masters &&
          replicasLinked.every(Boolean) &&
          states.every((state) => state.includes("cluster_state:ok"))
        );
      },
      30_000,
    );
  } catch (error) {
    // A cluster that did not come up is stopped here: the caller has nothing to stop.
    await cluster.stop();
    throw error;
  }
  return cluster;
}

function parseClusterNodes(text: string): ClusterNodeView[] {
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const [id = "", address = "", flags = "", masterId = "-", , , , , ...slots] = line.trim().split(" ");
      const port = Number(address.slice(address.indexOf(":") + 1, address.indexOf("@")));
      const flagList = flags.split(",");
      return {
        id,
        masterId: masterId === "-" ? undefined : masterId,
        port,
        role: flagList.includes("master") ? ("master" as const) : ("replica" as const),
        failed: flagList.includes("fail"),
        slots: slots.length,
      };
    });
}

export interface SentinelGroup {
  readonly name: string;
  /** redis:// URLs of the sentinels. */
  readonly sentinelUrls: readonly string[];
  /** The first sentinel's port, to talk to it (redisCli). */
  readonly sentinelPort: number;
  readonly master: RedisServer;
  readonly replica: RedisServer;
  /** The port of the server the sentinels name as master now. */
  masterPort(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * A master, its replica and `sentinels` sentinels (quorum: a majority), which fail over after
 * downAfterMs of the master's silence.
 */
export async function startSentinelGroup(sentinels = 1, downAfterMs = 1_000): Promise<SentinelGroup> {
  const name = "guardmaster";
  const dir = await mkdtemp(join(tmpdir(), "guard-redis-sentinel-"));
  // A replica's first sync writes an RDB file into its --dir, never into the test's working directory.
  const [masterPort, replicaPort, ...sentinelPorts] = (await freeLoopbackPorts(2 + sentinels)) as [
    number,
    number,
    ...number[],
  ];
  const quorum = Math.floor(sentinels / 2) + 1;
  // Sentinel rewrites its config file as it learns the group: each gets a file of its own.
  const files = sentinelPorts.map((_, index) => join(dir, `sentinel-${index}.conf`));
  for (const file of files)
    await writeFile(
      file,
      [
        `sentinel monitor ${name} 127.0.0.1 ${masterPort} ${quorum}`,
        `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
        `sentinel failover-timeout ${name} ${downAfterMs * 5}`,
        "",
      ].join("\n"),
    );
  const [master, replica] = (await startAll([
    () => startRedis(["--dir", dir], masterPort),
    () => startRedis(["--dir", dir, "--replicaof", "127.0.0.1", String(masterPort)], replicaPort),
  ])) as [RedisServer, RedisServer];
  // The sentinels find the replica in the master's INFO, which they read at once and then every
  // 10 s: they start once the replica is linked, or the group would wait for the second reading.
  let watchers: RedisServer[] = [];
  try {
    await waitUntil(
      "the replica to sync",
      async () => (await redisCli(replica.port, "INFO", "replication")).includes("master_link_status:up"),
      30_000,
    );
    watchers = await startAll(
      sentinelPorts.map((port, index) => () => startRedis([files[index] as string, "--sentinel"], port)),
    );
  } catch (error) {
    await Promise.all([master.stop(), replica.stop()]);
    throw error;
  }
  const group: SentinelGroup = {
    name,
    sentinelUrls: watchers.map((watcher) => watcher.url),
    sentinelPort: watchers[0]?.port ?? 0,
    master,
    replica,
    async masterPort() {
      for (const watcher of watchers) {
        try {
          const reply = await redisCli(watcher.port, "SENTINEL", "get-master-addr-by-name", name);
          const port = Number(reply.split("\n")[1]);
          if (Number.isInteger(port)) return port;
        } catch {}
      }
      throw new Error("no sentinel answers");
    },
    async stop() {
      await Promise.all([...watchers, master, replica].map((server) => server.stop()));
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitUntil(
      "the sentinels to see the replica",
      async () => {
        const seen = await Promise.all(
          watchers.map(async (watcher) =>
            (await redisCli(watcher.port, "SENTINEL", "replicas", name)).includes(String(replica.port)),
          ),
        );
        return seen.every(Boolean);
      },
      30_000,
    );
  } catch (error) {
    // A group that did not come up is stopped here: the caller has nothing to stop.
    await group.stop();
    throw error;
  }
  return group;
}
