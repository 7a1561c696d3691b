// Requests for the demo model's sentiment task, as a client population sends them: steady traffic
// (short messages, one in five a complaint) or, in input-shift mode, another population (long
// complaints). Sent to one unchanged model version, the shift moves the answers too (more NEGATIVE
// labels): the drift monitor must report it as input drift, not as a change of the model
// (docs/drift.md; test/e2e/drift.test.ts).
import type { JsonValue } from "../pipeline/types.js";

export type TrafficMode = "steady" | "input_shift";

const PRAISE = ["great service, thank you", "works as promised", "quick and friendly", "very happy with it"];
const COMPLAINTS = ["my parcel is late again", "the app is broken", "awful support", "I want a refund"];

/**
 * The body of the i-th sentiment request in `mode` (deterministic, so runs repeat). The request
 * number is fixed-width: steady traffic's size must not creep up with the count of requests sent.
 */
export function sentimentRequest(index: number, mode: TrafficMode): { [key: string]: JsonValue } {
  const pick = (list: readonly string[]): string => list[index % list.length] ?? "";
  const id = `#${String(index).padStart(8, "0")}`;
  if (mode === "steady") return { text: `${id}: ${index % 5 === 0 ? pick(COMPLAINTS) : pick(PRAISE)}` };
  const complaint = `${pick(COMPLAINTS)}, and nobody answers my messages about it. `;
  return { text: `${id}: ${complaint.repeat(6 + (index % 7))}` };
}
