// The routes[].match section: which requests a route takes (the matching itself is in match.ts); and
// routes[].streaming: which of the route's answers are streams besides text/event-stream. Both are
// the route's own, not a stage's: every stage that follows a stream reads the declaration.
import { z } from "zod";
import { headerName } from "../../config-kit/primitives.js";
import { covers, type RouteMatch } from "./match.js";

export const routeMatchSchema = z
  .strictObject({
    pathPrefix: z.string().startsWith("/").default("/"),
    /** Upper-case HTTP methods; empty means any. */
    methods: z.array(z.string().regex(/^[A-Z]+$/, { message: "expected an upper-case HTTP method" })).default([]),
    /** Exact header values that must all be present. */
    headers: z.record(headerName, z.string()).default({}),
  })
  .prefault({});

export interface Shadowing<Route> {
  /** A route that can never match... */
  readonly shadowed: Route;
  /** ...because this earlier one (the first such) takes every request it would. */
  readonly by: Route;
}

/** Routes that can never match because an earlier one always matches first (first match wins). */
export function findShadowing<Route>(
  routes: readonly Route[],
  matchOf: (route: Route) => RouteMatch,
): Shadowing<Route>[] {
  return routes.flatMap((shadowed, position) => {
    const by = routes.slice(0, position).find((earlier) => covers(matchOf(earlier), matchOf(shadowed)));
    return by === undefined ? [] : [{ shadowed, by }];
  });
}

/** NDJSON media types that are no stream of one JSON document per line, and why (config error text). */
const NOT_NDJSON: Readonly<Record<string, string>> = {
  "text/event-stream": "is Server-Sent Events, streamed on every route without being declared",
  "application/json":
    "is also every non-streamed JSON answer's type, and a pretty-printed one is not one document per line",
  "application/json-seq": "(RFC 7464) starts each record with RS and lets a record span lines: it is not NDJSON",
};

const ndjsonSchema = z.strictObject({
  /** How the lines read: generic (each line a complete document) or ollama (/api/chat, /api/generate deltas). */
  format: z.enum(["generic", "ollama"]).default("generic"),
  /** Media types (lower case, no parameters) whose answers on this route are NDJSON streams. */
  contentTypes: z
    .array(
      z.string().regex(/^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/, {
        message: 'expected a lower-case media type without parameters, such as "application/x-ndjson"',
      }),
    )
    .min(1)
    .default(["application/x-ndjson"])
    .superRefine((types, ctx) => {
      types.forEach((type, index) => {
        const why = NOT_NDJSON[type];
        if (why !== undefined) ctx.addIssue({ code: "custom", path: [index], message: `"${type}" ${why}` });
        else if (types.indexOf(type) < index)
          ctx.addIssue({ code: "custom", path: [index], message: `"${type}" is listed twice` });
      });
    }),
});

export const routeStreamingSchema = z
  .strictObject({
    /** Absent: an NDJSON answer on this route is a plain body (looked at whole, if at all). */
    ndjson: ndjsonSchema.optional(),
  })
  .prefault({});
