// Turning violations into bounded metric labels and a bounded header value.

/** "choices[3].message.content<json>.tags[12]" → "choices[*].message.content<json>.tags[*]". */
export function normaliseFieldPath(path: string): string {
  return path.replace(/\[(\d+|"(?:[^"\\]|\\.)*")\]/g, "[*]");
}

const UNSAFE_HEADER_CHARS = /[^A-Za-z0-9._\-:/]/g;

/**
 * "violated; rules=double.gte_lte,json.unknown_field": distinct rule ids in order of first
 * appearance, cut at a rule boundary (marked ",...") so the value stays within maxLength.
 */
export function verdictHeader(verdict: string, rules: readonly string[], maxLength: number): string {
  const distinct = [...new Set(rules.map((rule) => rule.replace(UNSAFE_HEADER_CHARS, "_")))];
  let value = `${verdict}; rules=`;
  let first = true;
  for (const rule of distinct) {
    const piece = first ? rule : `,${rule}`;
    if (value.length + piece.length + 4 > maxLength) return `${value}${first ? "..." : ",..."}`;
    value += piece;
    first = false;
  }
  return value;
}
