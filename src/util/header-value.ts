// Header values as node:http hands them over: one string, or an array for a repeated header.

/** A header as one value: repeats joined with ", " (RFC 9110 list semantics). */
export function headerValue(value: string | readonly string[] | undefined): string | undefined {
  return typeof value === "string" || value === undefined ? value : value.join(", ");
}
