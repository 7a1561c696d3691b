import { type Logger, pino } from "pino";

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The parts of the guard whose level `log.components` can set apart from `log.level`; each line
 * they write carries `component`. A fixed set, so a typo in the config is an error, not a silent
 * no-op. Lines outside them (startup, drain, stop) follow `log.level`.
 */
export const LOG_COMPONENTS = {
  pipeline: "the exchanges: per-request debug lines, decision lines, stage failures",
  grpc: "the ext_proc gRPC server and streams: connection and protocol errors, mode_override",
  reload: "configuration reloads (SIGHUP, file watch): applied, rejected, restart-only changes",
  redis: "the shared Redis tier of the cache and the budgets: lost, back",
  drift: "the drift monitor: fleet profile sync and its Redis",
  tracing: "OpenTelemetry: exporter setup and export failures",
} as const;
export type LogComponent = keyof typeof LOG_COMPONENTS;
const COMPONENT_NAMES = Object.keys(LOG_COMPONENTS) as LogComponent[];

export interface LogSettings {
  readonly level: LogLevel;
  readonly components: Readonly<Partial<Record<LogComponent, LogLevel | undefined>>>;
}

/**
 * Structured JSON logs on stdout. Bodies are never passed to the logger; the redaction list is a
 * second line of defence for credentials that could ride along in a logged header map.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: "inference-guard" },
    redact: {
      paths: ["authorization", "headers.authorization", "*.authorization", "cookie", "headers.cookie", "*.cookie"],
      censor: "[redacted]",
    },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}

/**
 * One child logger per component, made once: the gRPC server and the tracer keep theirs for the
 * process's life, so a reload changes the levels of these same loggers rather than handing out new
 * ones. A child made from one later (an exchange's) takes its level at that moment.
 */
export class ComponentLogs {
  readonly #byComponent: ReadonlyMap<LogComponent, Logger>;

  /** Without settings, every component logs at the root's level. */
  constructor(
    readonly root: Logger,
    settings: LogSettings = { level: root.level as LogLevel, components: {} },
  ) {
    this.#byComponent = new Map(COMPONENT_NAMES.map((component) => [component, root.child({ component })]));
    this.apply(settings);
  }

  of(component: LogComponent): Logger {
    return this.#byComponent.get(component) as Logger;
  }

  /** A component not named in `settings.components` logs at `settings.level`. */
  apply(settings: LogSettings): void {
    this.root.level = settings.level;
    for (const [component, logger] of this.#byComponent)
      logger.level = settings.components[component] ?? settings.level;
  }
}
