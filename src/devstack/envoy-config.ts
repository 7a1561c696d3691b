// Renders envoy/envoy.yaml: fills {{PLACEHOLDERS}} and keeps or drops "# >>> name … # <<< name"
// blocks, so the file users read is the file the tests run.
import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import { parseAddress } from "../util/address.js";

const LOOPBACK = "127.0.0.1";

export const ENVOY_TEMPLATE = new URL("../../../envoy/envoy.yaml", import.meta.url);

export type EnvoyVariant = "ext_proc" | "tracing" | "adaptive_concurrency";

/** Dropped from every rendering: the template's note on itself. */
const TEMPLATE_NOTE = "template";

export interface EnvoyConfigValues {
  /** Where the listener binds: loopback unless a deployment says otherwise (0.0.0.0 in a pod). */
  readonly listenHost?: string;
  readonly listenPort: number;
  readonly adminPort: number;
  /** The model pools: loopback unless set; a name rather than an address is resolved (STRICT_DNS). */
  readonly lightHost?: string;
  readonly lightPort: number;
  readonly heavyHost?: string;
  readonly heavyPort: number;
  /** "host:port" or "unix:/path" of the guard. */
  readonly guardAddress: string;
  readonly failureModeAllow: boolean;
  readonly messageTimeoutMs: number;
  readonly bufferLimitBytes: number;
  /** The routes' idle_timeout: a streamed answer with no data for this long is ended. */
  readonly routeIdleTimeoutMs: number;
  /** Where Envoy's tracer exports (OTLP/gRPC) and what share of new traces it samples: the tracing variant's. */
  readonly tracing?: {
    readonly collectorHost: string;
    readonly collectorPort: number;
    readonly samplingPercent: number;
  };
  readonly variants: ReadonlySet<EnvoyVariant>;
}

/** The guard cluster's endpoint address, as flow YAML. */
export function guardEndpoint(address: string): string {
  const target = parseAddress(address);
  // Envoy wants the bare IPv6 address here, without the brackets of the "[v6]:port" form.
  return "path" in target
    ? `{ pipe: { path: "${target.path}" } }`
    : `{ socket_address: { address: "${target.host}", port_value: ${target.port} } }`;
}

/** An address needs no resolving; a Kubernetes Service name does, and Envoy keeps re-resolving it. */
function clusterType(host: string): string {
  return isIP(host) === 0 ? "STRICT_DNS" : "STATIC";
}

export function renderEnvoyConfig(template: string, values: EnvoyConfigValues): string {
  const lightHost = values.lightHost ?? LOOPBACK;
  const heavyHost = values.heavyHost ?? LOOPBACK;
  const filled: Record<string, string> = {
    LISTEN_HOST: values.listenHost ?? LOOPBACK,
    LISTEN_PORT: String(values.listenPort),
    ENVOY_ADMIN_PORT: String(values.adminPort),
    LIGHT_HOST: lightHost,
    LIGHT_CLUSTER_TYPE: clusterType(lightHost),
    LIGHT_PORT: String(values.lightPort),
    HEAVY_HOST: heavyHost,
    HEAVY_CLUSTER_TYPE: clusterType(heavyHost),
    HEAVY_PORT: String(values.heavyPort),
    GUARD_ADDRESS: guardEndpoint(values.guardAddress),
    FAILURE_MODE_ALLOW: String(values.failureModeAllow),
    MESSAGE_TIMEOUT: `${values.messageTimeoutMs / 1000}s`,
    BUFFER_LIMIT_BYTES: String(values.bufferLimitBytes),
    ROUTE_IDLE_TIMEOUT: `${values.routeIdleTimeoutMs / 1000}s`,
    ...(values.tracing === undefined
      ? {}
      : {
          COLLECTOR_HOST: values.tracing.collectorHost,
          COLLECTOR_CLUSTER_TYPE: clusterType(values.tracing.collectorHost),
          COLLECTOR_PORT: String(values.tracing.collectorPort),
          TRACE_SAMPLING_PERCENT: String(values.tracing.samplingPercent),
        }),
  };
  const kept: string[] = [];
  let dropping: string | undefined;
  for (const line of template.split("\n")) {
    const open = /^\s*# >>> (\S+)/.exec(line);
    const close = /^\s*# <<< (\S+)/.exec(line);
    if (open?.[1] !== undefined) {
      if (open[1] === TEMPLATE_NOTE || !values.variants.has(open[1] as EnvoyVariant)) dropping ??= open[1];
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
