// Large Debian packages only the operations tests need (promtool, a headless browser): installed on
// first use through scripts/install-system-deps.sh, so `make test` works on a fresh machine.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { PROJECT_ROOT } from "../../src/devstack/envoy.js";

function onPath(command: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0;
}

/** The first of `commands` on PATH, installing the script's `group` when none is. */
export function ensureCommand(group: "promtool" | "browser", commands: readonly string[]): string {
  const present = (): string | undefined => commands.find(onPath);
  let found = present();
  if (found === undefined) {
    const install = spawnSync("bash", [join(PROJECT_ROOT, "scripts", "install-system-deps.sh"), group], {
      stdio: ["ignore", "inherit", "inherit"],
      timeout: 900_000,
    });
    found = present();
    if (found === undefined)
      throw new Error(
        `${commands.join(" / ")} not available and installing group "${group}" failed (status ${install.status})`,
      );
  }
  return found;
}

export interface Ran {
  readonly status: number | null;
  readonly stdout: string;
  /** stdout and stderr together, for failure messages. */
  readonly output: string;
}

export function run(command: string, args: readonly string[], input?: string): Ran {
  const result = spawnSync(command, args, {
    cwd: PROJECT_ROOT,
    encoding: "utf8",
    timeout: 120_000,
    ...(input === undefined ? {} : { input }),
  });
  return { status: result.status, stdout: result.stdout ?? "", output: `${result.stdout ?? ""}${result.stderr ?? ""}` };
}
