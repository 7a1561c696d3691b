// The routes[].match section: which requests a route takes. The matching itself is in match.ts.
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
