// CPU time and memory of the processes under test, read from /proc (Linux). A process is measured
// with its descendants, because a peer given as a shell command may run its server as a child.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

const CLOCK_TICKS_PER_SECOND = readClockTicks();

function readClockTicks(): number {
  try {
    const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
}

interface StatLine {
  readonly ppid: number;
  /** utime + stime of all threads, in clock ticks. */
  readonly cpuTicks: number;
}

/** The fields after the command name, which may itself contain spaces and parentheses. */
export function parseStat(text: string): StatLine | undefined {
  const close = text.lastIndexOf(")");
  if (close < 0) return undefined;
  const fields = text.slice(close + 2).split(" ");
  // fields[0] is the state (field 3 of proc(5)); ppid is field 4, utime 14, stime 15.
  const ppid = Number(fields[1]);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (![ppid, utime, stime].every(Number.isFinite)) return undefined;
  return { ppid, cpuTicks: utime + stime };
}

function readStat(pid: number): StatLine | undefined {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
}

/** The process and every live descendant. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = readStat(pid);
    if (stat === undefined) continue;
    const siblings = children.get(stat.ppid) ?? [];
    siblings.push(pid);
    children.set(stat.ppid, siblings);
  }
  const tree: number[] = [];
  const pending = [root];
  while (pending.length > 0) {
    const pid = pending.pop()!;
    tree.push(pid);
    pending.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** CPU seconds (user + system) used so far by these processes; exited ones count 0. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += readStat(pid)?.cpuTicks ?? 0;
  return ticks / CLOCK_TICKS_PER_SECOND;
}

/** A "Vm…: N kB" line of /proc/<pid>/status, in MiB. */
export function parseStatusKb(text: string, field: "VmRSS" | "VmHWM"): number | undefined {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
  return match?.[1] === undefined ? undefined : Number(match[1]) / 1024;
}

/** Summed over the processes, in MiB (the high-water mark of a tree is approximated by the sum). */
export function memoryMb(pids: readonly number[], field: "VmRSS" | "VmHWM"): number {
  let total = 0;
  for (const pid of pids) {
    try {
      total += parseStatusKb(readFileSync(`/proc/${pid}/status`, "utf8"), field) ?? 0;
    } catch {
      // exited between listing and reading
    }
  }
  return total;
}

/** Samples resident memory until stopped; reports the largest value seen. */
export function sampleRss(pids: readonly number[], intervalMs: number): { stop(): number } {
  let peak = memoryMb(pids, "VmRSS");
  const timer = setInterval(() => {
    peak = Math.max(peak, memoryMb(pids, "VmRSS"));
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, memoryMb(pids, "VmRSS"));
    },
  };
}

/** Pins every thread of the processes to the CPU list (taskset syntax, e.g. "0" or "0-1"). */
export function pinToCpus(pids: readonly number[], cpus: string): void {
  for (const pid of pids) execFileSync("taskset", ["-a", "-p", "-c", cpus, String(pid)], { stdio: "ignore" });
}
