// HTTP header names as the guard handles them: lower-case (Envoy and HTTP/2 deliver them so), and
// repeated headers joined into one value.
import { z } from "zod";

/** An RFC 9110 field-name token in lower case: the form every configured header name must take. */
export const headerName = z
  .string()
  .regex(/^[a-z0-9!#$%&'*+.^_`|~-]+$/, { message: "expected a lower-case HTTP header name" });

/** A header as node:http hands it over, as one value: repeats joined with ", " (RFC 9110 list semantics). */
export function headerValue(value: string | readonly string[] | undefined): string | undefined {
  return typeof value === "string" || value === undefined ? value : value.join(", ");
}
