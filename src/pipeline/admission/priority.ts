// Priority classes, highest first. The order of PRIORITIES is the shedding order reversed.

export const PRIORITIES = ["critical", "standard", "sheddable"] as const;
export type Priority = (typeof PRIORITIES)[number];

export const DEFAULT_PRIORITY: Priority = "standard";

/** Lower number = more important; used to compare classes. */
export function rank(priority: Priority): number {
  return PRIORITIES.indexOf(priority);
}

export type PriorityParse =
  | { readonly priority: Priority; readonly fallback?: undefined }
  | { readonly priority: Priority; readonly fallback: "unknown" };

/**
 * Absent header → standard. An unknown value also becomes standard rather than an error: a typo
 * must neither promote a request to critical nor get it shed first; it is counted instead.
 */
export function parsePriority(raw: string | undefined): PriorityParse {
  if (raw === undefined) return { priority: DEFAULT_PRIORITY };
  const value = raw.trim().toLowerCase();
  if ((PRIORITIES as readonly string[]).includes(value)) return { priority: value as Priority };
  return { priority: DEFAULT_PRIORITY, fallback: "unknown" };
}
