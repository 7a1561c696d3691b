/** How a command writes: whole lines, to stdout and stderr. */
export interface CliIo {
  /** One line of machine-readable output (no trailing newline). */
  readonly out: (line: string) => void;
  /** Human-readable diagnostics (no trailing newline). */
  readonly err: (line: string) => void;
}
