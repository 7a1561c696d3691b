import type { RouteConfig } from "../config/schema.js";
import type { RequestInfo } from "./types.js";

/** First match wins, in configuration order; undefined means "pass through untouched". */
export function matchRoute(routes: readonly RouteConfig[], request: RequestInfo): RouteConfig | undefined {
  const path = request.path;
  return routes.find((route) => {
    const { pathPrefix, methods, headers } = route.match;
    if (!path.startsWith(pathPrefix)) return false;
    if (methods.length > 0 && !methods.includes(request.method)) return false;
    for (const [name, value] of Object.entries(headers)) {
      if (request.headers.get(name) !== value) return false;
    }
    return true;
  });
}
