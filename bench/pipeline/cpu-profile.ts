// Reading a V8 CPU profile (node --cpu-prof, the .cpuprofile JSON): how much of the guard's CPU went
// to the code of some files, callees included. The benchmark states the drift monitor's cost per
// response this way: too small (~1 µs of ~700) to show as a difference of process CPU between
// runs on a shared machine, it shows in the samples of one profiled run.

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string };
  readonly children?: readonly number[];
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  /** The node on top of the stack at each sample. */
  readonly samples: readonly number[];
  /** Microseconds since the previous sample, per sample. */
  readonly timeDeltas: readonly number[];
}

/**
 * Microseconds of samples taken with a frame from a matching script on the stack: time in that
 * code and in whatever it called (a library, the runtime), counted once however deep it recursed.
 */
export function inclusiveMicros(profile: CpuProfile, matches: (url: string) => boolean): number {
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
  let micros = 0;
  profile.samples.forEach((id, index) => {
    if (isInside(id)) micros += profile.timeDeltas[index] ?? 0;
  });
  return micros;
}

/** Total sampled microseconds of the profile. */
export function sampledMicros(profile: CpuProfile): number {
  return profile.timeDeltas.reduce((sum, delta) => sum + Math.max(0, delta), 0);
}
