// Renders envoy/envoy.yaml: fills {{PLACEHOLDERS}} and keeps or drops "# >>> name … # <<< name"
// blocks, so the file users read is the file the tests run.
import { readFile } from "node:fs/promises";
import { parseAddress } from "../util/address.js";

export const ENVOY_TEMPLATE = new URL("../../../envoy/envoy.yaml", import.meta.url);

export type EnvoyVariant = "ext_proc" | "adaptive_concurrency";

export interface EnvoyConfigValues {
  readonly listenPort: number;
  readonly adminPort: number;
  readonly lightPort: number;
  readonly heavyPort: number;
  /** "host:port" or "unix:/path" of the guard. */
  readonly guardAddress: string;
  readonly failureModeAllow: boolean;
  readonly messageTimeoutMs: number;
  readonly bufferLimitBytes: number;
  /** The routes' idle_timeout: a streamed answer with no data for this long is ended. */
  readonly routeIdleTimeoutMs: number;
  readonly variants: ReadonlySet<EnvoyVariant>;
}

function guardEndpoint(address: string): string {
  const target = parseAddress(address);
  // Envoy wants the bare IPv6 address here, without the brackets of the "[v6]:port" form.
  return "path" in target
    ? `{ pipe: { path: "${target.path}" } }`
    : `{ socket_address: { address: "${target.host}", port_value: ${target.port} } }`;
}

export function renderEnvoyConfig(template: string, values: EnvoyConfigValues): string {
  const filled: Record<string, string> = {
    LISTEN_PORT: String(values.listenPort),
    ENVOY_ADMIN_PORT: String(values.adminPort),
    LIGHT_PORT: String(values.lightPort),
    HEAVY_PORT: String(values.heavyPort),
    GUARD_ADDRESS: guardEndpoint(values.guardAddress),
    FAILURE_MODE_ALLOW: String(values.failureModeAllow),
    MESSAGE_TIMEOUT: `${values.messageTimeoutMs / 1000}s`,
    BUFFER_LIMIT_BYTES: String(values.bufferLimitBytes),
    ROUTE_IDLE_TIMEOUT: `${values.routeIdleTimeoutMs / 1000}s`,
  };
  const kept: string[] = [];
  let dropping: string | undefined;
  for (const line of template.split("\n")) {
    const open = /^\s*# >>> (\S+)/.exec(line);
    const close = /^\s*# <<< (\S+)/.exec(line);
    if (open?.[1] !== undefined) {
      if (!values.variants.has(open[1] as EnvoyVariant)) dropping ??= open[1];
      continue;
    }
    if (close?.[1] !== undefined) {
      if (dropping === close[1]) dropping = undefined;
      continue;
    }
    if (dropping === undefined) kept.push(line);
  }
  return kept.join("\n").replace(/\{\{([A-Z_]+)\}\}/g, (match, name: string) => {
    const value = filled[name];
    if (value === undefined) throw new Error(`envoy template: unknown placeholder ${match}`);
    return value;
  });
}

export async function loadEnvoyTemplate(): Promise<string> {
  return readFile(ENVOY_TEMPLATE, "utf8");
}
