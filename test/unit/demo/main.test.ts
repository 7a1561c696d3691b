import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import t from "tap";

const MAIN = fileURLToPath(new URL("../../../src/demo/main.js", import.meta.url));

function startCli(args: readonly string[]) {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  const firstLine = new Promise<string>((resolve) => {
    const check = (): void => {
      const end = stdout.indexOf("\n");
      if (end >= 0) resolve(stdout.slice(0, end));
    };
    child.stdout.on("data", check);
    child.once("exit", () => resolve(stdout));
  });
  return { child, firstLine, exited, output: () => ({ stdout, stderr }) };
}

t.test("prints one ready line with the actual port, serves, and exits 0 on SIGTERM", async (t) => {
  const cli = startCli([
    ...["--port", "0", "--host", "127.0.0.1", "--pool", "heavy", "--version", "v3", "--seed", "5"],
    ...["--first-token-ms", "1", "--inter-token-ms", "1"],
  ]);
  const ready = JSON.parse(await cli.firstLine) as { ready: boolean; port: number; pool: string };
  t.match(ready, { ready: true, port: Number, pool: "heavy" });
  t.ok(ready.port > 0, "the port it really got, not 0");

  const response = await fetch(`http://127.0.0.1:${ready.port}/v1/predict/sentiment`, { method: "POST", body: "{}" });
  t.equal(response.status, 200);
  t.equal(response.headers.get("x-model-version"), "v3");
  t.equal(response.headers.get("x-demo-pool"), "heavy");

  cli.child.kill("SIGTERM");
  const [code, signal] = await cli.exited;
  t.equal(code, 0);
  t.equal(signal, null);
  t.equal(cli.output().stdout.trim().split("\n").length, 1, "exactly one stdout line");
});

t.test("bad flags exit 2 with a usage message and no ready line", async (t) => {
  const cases = [
    ["--capacity", "lots"],
    ["--error-rate", "1.5"],
    ["--no-such-flag"],
    ["--port", "70000"],
    ["--first-token-ms", "soon"],
    ["--inter-token-ms", "600001"],
  ];
  // In parallel: each case is a process start, the slow part on a busy machine.
  const runs = cases.map((args) => ({ args, cli: startCli(args) }));
  for (const { args, cli } of runs) {
    const [code] = await cli.exited;
    t.equal(code, 2, args.join(" "));
    t.equal(cli.output().stdout, "");
    t.match(cli.output().stderr, /usage:/);
  }
});
