import { type Logger, pino } from "pino";

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
