// Notices an Envoy that ignores the guard's mode_override. Envoy drops a mode_override it does not
// allow (allow_mode_override false, a mode missing from allowed_override_modes) without a word: it
// sends none of the phases the guard asked for (request body, response headers, response body) and
// closes the stream at once, so the exchange passes unchecked — an enforced contract included — and
// nothing fails. One such stream looks like a client that left at once; many in a row, with no
// asked-for frame ever arriving, are the misconfiguration.

import type { Logger } from "pino";
import type { Gauge } from "prom-client";

/** Streams in a row closed without the frame the guard asked for before the watch calls the override ignored. */
export const IGNORED_AFTER_MISSES = 5;

export class ModeOverrideWatch {
  #missesInARow = 0;
  #ignored = false;

  constructor(
    private readonly gauge: Gauge,
    private readonly log: Logger,
  ) {
    gauge.set(0);
  }

  get ignored(): boolean {
    return this.#ignored;
  }

  /** A stream ended: every phase the guard asked for came, or Envoy closed at once without one. */
  asked(arrived: boolean): void {
    if (arrived) {
      this.#missesInARow = 0;
      if (!this.#ignored) return;
      this.#ignored = false;
      this.gauge.set(0);
      this.log.info("Envoy sends the phases the guard asks for again (mode_override honoured)");
      return;
    }
    this.#missesInARow++;
    if (this.#ignored || this.#missesInARow < IGNORED_AFTER_MISSES) return;
    this.#ignored = true;
    this.gauge.set(1);
    this.log.warn(
      { streamsInARow: this.#missesInARow },
      "Envoy ignores the guard's mode_override (it sent none of the bodies or response headers asked for): set allow_mode_override: true on the ext_proc filter and, if allowed_override_modes is set, list the modes docs/contracts.md names; until then requests pass unchecked",
    );
  }
}
