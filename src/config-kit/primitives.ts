// Schema building blocks every configuration section uses. A leaf: the stages' schema modules and
// config/ (which composes them) both import it, so it imports neither.
import { z } from "zod";

/** An RFC 9110 field-name token in lower case (Envoy and HTTP/2 deliver header names so): the form every configured header name must take. */
export const headerName = z
  .string()
  .regex(/^[a-z0-9!#$%&'*+.^_`|~-]+$/, { message: "expected a lower-case HTTP header name" });

/** A header name, or "" to switch the header off. */
export const optionalHeaderName = z.union([headerName, z.literal("")]);

/**
 * A name the operator chooses (route, pool, tier) that ends up as a metric label or header value:
 * short, stable and bounded by the config file.
 */
export function labelName(maxLength: number) {
  return z.string().regex(new RegExp(`^[a-z][a-z0-9_-]{0,${maxLength - 1}}$`), {
    message: `expected 1-${maxLength} chars of a-z, 0-9, _ or -, starting with a letter`,
  });
}

/**
 * A key that no longer exists: any value is an error that says why, rather than zod's bare
 * "unrecognized key".
 */
export function removedKey(why: string) {
  return z.undefined({ error: `removed: ${why}` }).optional();
}

/** A key that no longer exists because its setting moved: the error names where it went. */
export function movedKey(to: string) {
  return z.undefined({ error: `moved: set ${to} instead` }).optional();
}
