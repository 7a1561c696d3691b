// Listen and connect addresses as the config writes them: "host:port", "[v6]:port" or "unix:/path".

/** What node:net's connect and a server's listen take. */
export type SocketTarget = { readonly path: string } | { readonly host: string; readonly port: number };

const UNIX_PREFIX = "unix:";

/** Throws on anything else: an address is validated where it is configured, so this is a bug. */
export function parseAddress(address: string): SocketTarget {
  if (address.startsWith(UNIX_PREFIX)) {
    const path = address.slice(UNIX_PREFIX.length);
    if (path === "") throw new Error(`no socket path in "${address}"`);
    return { path };
  }
  const colon = address.lastIndexOf(":");
  const rawHost = colon < 0 ? "" : address.slice(0, colon);
  const portText = address.slice(colon + 1);
  const bracketed = rawHost.startsWith("[") && rawHost.endsWith("]");
  const host = bracketed ? rawHost.slice(1, -1) : rawHost;
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
  // An unbracketed IPv6 host ("::1:80") cannot be told from its port.
  if (colon < 0 || host === "" || (!bracketed && host.includes(":")) || !(port <= 65_535)) {
    throw new Error(`expected "host:port", "[v6]:port" or "unix:/path", got "${address}"`);
  }
  return { host, port };
}
