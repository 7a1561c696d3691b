// How a request finds its route, and the one question the config check asks of the same rules:
// can a route ever win against the routes before it.
import type { RequestInfo } from "../types.js";

export interface RouteMatch {
  readonly pathPrefix: string;
  /** Upper-case HTTP methods; empty means any. */
  readonly methods: readonly string[];
  /** Exact header values that must all be present. */
  readonly headers: Readonly<Record<string, string>>;
}

export interface MatchableRoute {
  readonly name: string;
  readonly match: RouteMatch;
}

function matches(match: RouteMatch, request: RequestInfo): boolean {
  if (!request.path.startsWith(match.pathPrefix)) return false;
  if (match.methods.length > 0 && !match.methods.includes(request.method)) return false;
  for (const [name, value] of Object.entries(match.headers)) {
    if (request.headers.get(name) !== value) return false;
  }
  return true;
}

/** First match wins, in configuration order; undefined means "pass through untouched". */
export function matchRoute<Route extends MatchableRoute>(
  routes: readonly Route[],
  request: RequestInfo,
): Route | undefined {
  return routes.find((route) => matches(route.match, request));
}

/**
 * True when every request `later` matches is also matched by `earlier`, so `later` can never win
 * behind it. Exact for the rules in matches(): each condition of `earlier` must follow from one of
 * `later`. A request made of later's prefix, one of its methods (or a method earlier does not
 * list) and exactly later's headers matches `later` and fails any condition that does not follow.
 */
export function covers(earlier: RouteMatch, later: RouteMatch): boolean {
  if (!later.pathPrefix.startsWith(earlier.pathPrefix)) return false;
  if (earlier.methods.length > 0) {
    if (later.methods.length === 0) return false;
    if (!later.methods.every((method) => earlier.methods.includes(method))) return false;
  }
  return Object.entries(earlier.headers).every(([name, value]) => later.headers[name] === value);
}
