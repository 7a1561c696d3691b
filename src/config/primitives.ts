// Schema building blocks shared by the core schema and the capabilities' own sections (kept apart
// from schema.ts, which imports those sections).
import { z } from "zod";

export const headerName = z
  .string()
  .regex(/^[a-z0-9!#$%&'*+.^_`|~-]+$/, { message: "expected a lower-case HTTP header name" });
