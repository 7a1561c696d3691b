// Reading a V8 CPU profile (node --cpu-prof, the .cpuprofile JSON): which share of the guard's CPU
// went to the code of some files, callees included. The benchmark states the drift monitor's cost
// per response this way: too small (a few µs of ~1000) to show as a difference of process CPU
// between runs on a shared machine, it shows in the samples of one profiled run.

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string };
  readonly children?: readonly number[];
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  /** The node on top of the stack at each sample. */
  readonly samples: readonly number[];
}

/**
 * The share of the samples taken while the process ran (V8's "(idle)" samples left out) that had a
 * frame from a matching script on the stack: that code and whatever it called (a library, the
 * runtime), counted once however deep it recursed. Samples are counted, not weighted by their time
 * deltas: a delta is wall time, and on a shared machine it grows with every preemption, so the
 * share times the process's CPU time is the CPU that code took.
 */
export function sampleShare(profile: CpuProfile, matches: (url: string) => boolean): number {
  const parentOf = new Map<number, number>();
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parentOf.set(child, node.id);
  }
  const inside = new Map<number, boolean>();
  const isInside = (id: number): boolean => {
    const known = inside.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id);
    const parent = parentOf.get(id);
    const result = (node !== undefined && matches(node.callFrame.url)) || (parent !== undefined && isInside(parent));
    inside.set(id, result);
    return result;
  };
  let running = 0;
  let matching = 0;
  for (const id of profile.samples) {
    if (byId.get(id)?.callFrame.functionName === "(idle)") continue;
    running++;
    if (isInside(id)) matching++;
  }
  return running === 0 ? 0 : matching / running;
}
