// Priority classes, highest first. The order of PRIORITIES is the shedding order reversed. Shared
// below the stages: identity derives the class once per exchange, admission (and anything else)
// reads it from the Exchange.

export const PRIORITIES = ["critical", "standard", "sheddable"] as const;
export type Priority = (typeof PRIORITIES)[number];

export const DEFAULT_PRIORITY: Priority = "standard";

/** A class name as a header carries it (any case, surrounding spaces); undefined when it names none. */
export function parsePriority(raw: string): Priority | undefined {
  const value = raw.trim().toLowerCase();
  return (PRIORITIES as readonly string[]).includes(value) ? (value as Priority) : undefined;
}
