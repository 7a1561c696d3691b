// Who may use the admin port. It listens on loopback by default, but loopback is reachable from a
// browser on the same host: a web page can POST to it (CSRF) and, by DNS rebinding (a name of the
// attacker's resolving to 127.0.0.1), read from it. So every request must name the admin server
// itself in Host, a browser's cross-site Origin is refused, and what changes state needs a token.
import { createHash, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
import { parseAddress } from "../util/address.js";

/** The environment variable holding the admin token; it takes precedence over admin.tokenFile. */
export const ADMIN_TOKEN_ENV = "INFERENCE_GUARD_ADMIN_TOKEN";

export interface AdminRefusal {
  readonly status: number;
  /** Stable reason code: the body's `error`, the `x-guard-reason` header, the metric label. */
  readonly reason:
    | "admin.host_not_allowed"
    | "admin.cross_origin"
    | "admin.token_not_configured"
    | "admin.token_missing"
    | "admin.token_invalid";
  readonly message: string;
}

export interface AdminAccessSettings {
  /** listen.admin as configured. */
  readonly address: string;
  /** admin.allowedHosts: further names clients reach the admin port by (a Service's DNS name). */
  readonly allowedHosts: readonly string[];
  readonly tokenFile: string | undefined;
  /** process.env[ADMIN_TOKEN_ENV]. */
  readonly envToken: string | undefined;
}

const LOCAL_NAMES = ["localhost", "127.0.0.1", "[::1]"];
const WILDCARDS = new Set(["0.0.0.0", "::"]);
const READ_ONLY = new Set(["GET", "HEAD"]);

/** The host name of a URL ("[::1]" keeps its brackets, as URL has it); undefined if it is none ("null"). */
function hostnameOf(url: string): string | undefined {
  try {
    return new URL(url).hostname;
  } catch {
    return undefined;
  }
}

function ipLiteral(hostname: string): boolean {
  return isIP(hostname.replace(/^\[(.*)\]$/, "$1")) !== 0;
}

/**
 * Host names are checked, not ports: a Service or a port-forward may reach the port under another
 * number, and rebinding needs a name, never a port, of the attacker's.
 */
function hostAllowance(settings: AdminAccessSettings): (hostname: string) => boolean {
  const names = new Set([...LOCAL_NAMES, ...settings.allowedHosts.map((name) => name.toLowerCase())]);
  const target = parseAddress(settings.address);
  const wildcard = "host" in target && WILDCARDS.has(target.host);
  if ("host" in target && !wildcard)
    names.add(target.host.includes(":") ? `[${target.host}]` : target.host.toLowerCase());
  // Bound to every interface, the port answers on addresses the config does not name (the pod IP of
  // a probe or a scrape). An IP literal cannot be rebound: it is the address the client dialled.
  return (hostname) => names.has(hostname) || (wildcard && ipLiteral(hostname));
}

function sameDigest(given: string, expected: string): boolean {
  const digest = (text: string): Buffer => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

export type AdminAccess = (request: IncomingMessage) => Promise<AdminRefusal | undefined>;

export function adminAccess(settings: AdminAccessSettings): AdminAccess {
  const allowed = hostAllowance(settings);
  // Read at each use: a rotated Secret applies without a reload.
  const token = async (): Promise<string | undefined> => {
    if (settings.envToken !== undefined && settings.envToken !== "") return settings.envToken;
    if (settings.tokenFile === undefined) return undefined;
    const text = await readFile(settings.tokenFile, "utf8").catch(() => "");
    return text.trim() === "" ? undefined : text.trim();
  };
  return async (request) => {
    const host = hostnameOf(`http://${request.headers.host ?? ""}`);
    if (host === undefined || !allowed(host))
      return {
        status: 421,
        reason: "admin.host_not_allowed",
        message: `Host "${request.headers.host ?? ""}" is not this admin server; add the name to admin.allowedHosts if clients use it`,
      };
    const origin = request.headers.origin;
    const originHost = origin === undefined ? undefined : hostnameOf(origin);
    const crossSite =
      (origin !== undefined && (originHost === undefined || !allowed(originHost))) ||
      request.headers["sec-fetch-site"] === "cross-site";
    if (crossSite)
      return { status: 403, reason: "admin.cross_origin", message: "requests from other sites are refused" };
    if (READ_ONLY.has(request.method ?? "GET")) return undefined;
    const expected = await token();
    if (expected === undefined)
      return {
        status: 403,
        reason: "admin.token_not_configured",
        message: `no admin token is configured, so endpoints that change state are refused: set ${ADMIN_TOKEN_ENV} or admin.tokenFile, then send "Authorization: Bearer <token>"`,
      };
    const given = /^Bearer (.+)$/i.exec(request.headers.authorization ?? "")?.[1];
    if (given === undefined)
      return { status: 401, reason: "admin.token_missing", message: 'send "Authorization: Bearer <token>"' };
    if (!sameDigest(given, expected))
      return { status: 401, reason: "admin.token_invalid", message: "the admin token does not match" };
    return undefined;
  };
}
