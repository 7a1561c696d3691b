// Checks that need more than one part of the file: a route against a top-level section, routes
// against each other, the file's sections against what the routes use. Each runs on the parts
// that parsed: a part that failed already has its own errors, and a check run on a guess of it
// would add noise, not news.
import type { ConfigIssue } from "../config-kit/issues.js";
import { DEADLINE_MARGIN_MS, longestClassWaitMs } from "../pipeline/admission/config.js";
import { findShadowing } from "../pipeline/routing/config.js";
import { type RouteConfig, SECTIONS, type Sections } from "./schema.js";

export interface ParsedRoute {
  /** Position in the file's routes list, for paths. */
  readonly index: number;
  /** The route's keys that are valid on their own: all of them when the route is valid. */
  readonly parts: Partial<RouteConfig>;
  /** The whole route, when it is valid. */
  readonly route?: RouteConfig;
}

/** What validation got out of the file, part by part. */
export interface ParsedParts {
  /** The top-level sections that are valid. */
  readonly sections: Partial<Sections>;
  /** Every item of the routes list. */
  readonly routes: readonly ParsedRoute[];
  /** The top-level keys the file sets. */
  readonly written: readonly string[];
}

type Check = (parts: ParsedParts) => ConfigIssue[];

/** The routes whose `key` part is valid, with that part. */
function withPart<Key extends keyof RouteConfig>(
  routes: readonly ParsedRoute[],
  key: Key,
): { readonly index: number; readonly part: NonNullable<RouteConfig[Key]> }[] {
  return routes.flatMap(({ index, parts }) => {
    const part = parts[key];
    return part === undefined ? [] : [{ index, part }];
  });
}

function duplicateRouteNames({ routes }: ParsedParts): ConfigIssue[] {
  const first = new Map<string, number>();
  return withPart(routes, "name").flatMap(({ index, part: name }) => {
    const earlier = first.get(name);
    if (earlier === undefined) {
      first.set(name, index);
      return [];
    }
    return [{ path: `routes[${index}].name`, message: `duplicate route name "${name}" (also routes[${earlier}])` }];
  });
}

/**
 * Route pairs where the earlier route matches every request the later one would. An error, unless
 * the earlier route is in maintenance: a catch-all maintenance route put first is the quick way to
 * take a sidecar out of service, and the routes behind it are meant to come back.
 */
function shadowing(routes: readonly ParsedRoute[], behindMaintenance: boolean): ConfigIssue[] {
  const describe = ({ index, part }: { index: number; part: RouteConfig["match"] }): string => {
    const name = routes[index]?.parts.name;
    return `routes[${index}]${name === undefined ? "" : ` "${name}"`} (pathPrefix "${part.pathPrefix}")`;
  };
  return findShadowing(withPart(routes, "match"), ({ part }) => part)
    .filter(({ by }) => (routes[by.index]?.parts.maintenance !== undefined) === behindMaintenance)
    .map(({ shadowed, by }) => ({
      path: `routes[${shadowed.index}].match`,
      message: behindMaintenance
        ? `${describe(shadowed)} is out of service while ${describe(by)}, in maintenance, comes first`
        : `${describe(shadowed)} can never match: ${describe(by)} comes first and matches every request it would`,
    }));
}

const shadowedRoutes = ({ routes }: ParsedParts) => shadowing(routes, false);
const routesBehindMaintenance = ({ routes }: ParsedParts) => shadowing(routes, true);

function cacheEntriesFit({ sections: { cache }, routes }: ParsedParts): ConfigIssue[] {
  if (cache === undefined) return [];
  return withPart(routes, "cache").flatMap(({ index, part }) =>
    part.enabled && part.maxEntryBytes > cache.maxBytes
      ? [
          {
            path: `routes[${index}].cache.maxEntryBytes`,
            message: `${part.maxEntryBytes} exceeds cache.maxBytes (${cache.maxBytes}): no entry could ever be stored`,
          },
        ]
      : [],
  );
}

/** A shadow comparison sends its side requests through Envoy and compares through the contract. */
function shadowComparable({ sections: { canary }, routes }: ParsedParts): ConfigIssue[] {
  return withPart(routes, "canary").flatMap(({ index, part }) => {
    if (part.shadow === undefined) return [];
    const issues: ConfigIssue[] = [];
    if (canary !== undefined && canary.envoyUrl === undefined)
      issues.push({
        path: "canary.envoyUrl",
        message: `routes[${index}].canary.shadow sends its side requests through Envoy: set Envoy's listener URL (e.g. http://127.0.0.1:8080)`,
      });
    if (routes[index]?.route !== undefined && routes[index].route.contract === undefined)
      issues.push({
        path: `routes[${index}].canary.shadow`,
        message: "answers are compared field by field through the route's contract: bind one (routes[].contract)",
      });
    return issues;
  });
}

const KNOWN_KEYS: ReadonlySet<string> = new Set([...Object.keys(SECTIONS), "routes"]);

function unknownSections({ written }: ParsedParts): ConfigIssue[] {
  return written
    .filter((key) => !KNOWN_KEYS.has(key))
    .map((key) => ({ path: key, message: `unknown section, ignored (sections: ${[...KNOWN_KEYS].join(", ")})` }));
}

/** Sections that only take effect through routes that opt in. */
const USED_BY_ROUTES: readonly { section: keyof Sections; uses: (route: RouteConfig) => boolean; what: string }[] = [
  { section: "cache", uses: (route) => route.cache.enabled, what: "enables the cache" },
  { section: "admission", uses: (route) => route.admission.enabled, what: "enables admission" },
  { section: "budget", uses: (route) => route.budget.enabled, what: "enables a tenant budget" },
  { section: "contracts", uses: (route) => route.contract !== undefined, what: "binds a contract" },
  { section: "usage", uses: (route) => route.usage.enabled, what: "enables usage" },
  { section: "canary", uses: (route) => route.canary !== undefined, what: "is in rollout (routes[].canary)" },
];

function unusedSections({ written, sections, routes }: ParsedParts): ConfigIssue[] {
  // An invalid route might be the one that uses the section: no telling until it is fixed.
  const valid = routes.flatMap(({ route }) => (route === undefined ? [] : [route]));
  if (valid.length < routes.length) return [];
  // A section that failed to parse has its own error; "no effect" would only add noise.
  return USED_BY_ROUTES.filter(
    ({ section, uses }) => written.includes(section) && sections[section] !== undefined && !valid.some(uses),
  ).map(({ section, what }) => ({ path: section, message: `no route ${what}: this section has no effect` }));
}

// Followers extend Envoy's per-message timer, which Envoy caps at max_message_timeout.
function coalescingOutlastsEnvoy({ sections: { envoy }, routes }: ParsedParts): ConfigIssue[] {
  if (envoy === undefined) return [];
  return withPart(routes, "cache").flatMap(({ index, part }) =>
    part.enabled && part.singleFlightWaitMs >= envoy.maxMessageTimeoutMs
      ? [
          {
            path: `routes[${index}].cache.singleFlightWaitMs`,
            message:
              `${part.singleFlightWaitMs} ms is not below envoy.maxMessageTimeoutMs (${envoy.maxMessageTimeoutMs}); ` +
              "Envoy gives up on coalesced requests before they stop waiting",
          },
        ]
      : [],
  );
}

/**
 * Envoy's message_timeout shorter than a class's wait means Envoy gives up on a queued request
 * first (failure_mode_allow then lets it through unadmitted, or the client gets a 500) unless
 * max_message_timeout admits the guard's per-message extension.
 */
function queueOutlastsEnvoy({ sections: { envoy, admission }, routes }: ParsedParts): ConfigIssue[] {
  if (envoy === undefined || admission === undefined) return [];
  if (!withPart(routes, "admission").some(({ part }) => part.enabled)) return [];
  const longest = longestClassWaitMs(admission.classes);
  if (envoy.messageTimeoutMs >= longest) return [];
  return [
    {
      path: "envoy.messageTimeoutMs",
      message:
        `Envoy's message_timeout (${envoy.messageTimeoutMs} ms) is shorter than the longest admission wait ` +
        `(${longest} ms): raise message_timeout, or set max_message_timeout ≥ ${longest + DEADLINE_MARGIN_MS} ms ` +
        `so the guard's deadline extension is honoured`,
    },
  ];
}

// A message carries a body Envoy buffered whole, beside the request's headers (Envoy's own limit
// on those: 96 KiB) and its protobuf framing; 1 MiB covers both.
const MESSAGE_HEADROOM_BYTES = 1024 * 1024;

/** A body Envoy buffered up to its limit must fit the largest message the guard reads. */
function bufferedBodyFitsOneMessage({ sections: { envoy, limits } }: ParsedParts): ConfigIssue[] {
  if (envoy === undefined || limits === undefined) return [];
  const needed = envoy.bufferLimitBytes + MESSAGE_HEADROOM_BYTES;
  if (limits.maxMessageBytes >= needed) return [];
  return [
    {
      path: "limits.maxMessageBytes",
      message:
        `${limits.maxMessageBytes} cannot hold a body Envoy buffered up to envoy.bufferLimitBytes (${envoy.bufferLimitBytes}) ` +
        `with its headers: at least ${needed}`,
    },
  ];
}

/** Configurations that cannot work as written. */
export const ERROR_CHECKS: readonly Check[] = [
  duplicateRouteNames,
  shadowedRoutes,
  cacheEntriesFit,
  bufferedBodyFitsOneMessage,
  shadowComparable,
];

/** Configurations that work, but probably not as intended. */
export const WARNING_CHECKS: readonly Check[] = [
  routesBehindMaintenance,
  unknownSections,
  unusedSections,
  coalescingOutlastsEnvoy,
  queueOutlastsEnvoy,
];
