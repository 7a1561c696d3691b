// The top-level annotate section: the headers that name the matched route.
import { z } from "zod";
import { optionalHeaderName } from "../../config-kit/primitives.js";

export const annotateSchema = z
  .strictObject({
    /** Header added to the upstream request naming the matched route; "" disables it. */
    requestHeader: optionalHeaderName.default("x-guard-route"),
    /** Header added to the client's response naming the matched route; "" disables it. */
    responseHeader: optionalHeaderName.default("x-guard-route"),
  })
  .prefault({});

export type AnnotateConfig = z.output<typeof annotateSchema>;
