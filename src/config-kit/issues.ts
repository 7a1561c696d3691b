// The shape of every configuration problem, whichever section's check found it.

export interface ConfigIssue {
  /** Dotted path with [i] for array items, e.g. "routes[2].match.pathPrefix"; "" for the root. */
  readonly path: string;
  readonly message: string;
}
