// A version against its route's baseline: per field, the scores that apply to its kind, which of
// them cross their threshold, and the version's verdict. Below minSamples on either side there is
// no verdict at all ("insufficient_data"): a small sample's PSI is noise, and noise must not alarm.
import type { DriftThresholds } from "./config.js";
import type { FieldProfile, VersionProfile } from "./profile.js";
import { alignedShares, decileShares, jsDistance, normalisedWasserstein, psi } from "./scores.js";

export type DriftMethod =
  | "psi"
  | "js_distance"
  | "wasserstein"
  | "variance_ratio"
  | "mode_share_delta"
  | "missing_delta";

export interface FieldDrift {
  readonly field: string;
  readonly kind: FieldProfile["kind"];
  /** The scores that could be computed (both sides need minSamples present values for the distribution ones). */
  readonly scores: Readonly<Partial<Record<DriftMethod, number>>>;
  /** Methods whose score crossed its threshold. */
  readonly drifting: readonly DriftMethod[];
  /** How far past its threshold the worst method is (1 = at it): the order of "top drifting fields". */
  readonly severity: number;
}

export type Verdict = "baseline" | "insufficient_data" | "stable" | "model_drift" | "input_drift";

export interface VersionDrift {
  readonly version: string;
  readonly samples: number;
  readonly verdict: Verdict;
  /** Output fields, worst first; empty for the baseline and without enough data. */
  readonly fields: readonly FieldDrift[];
  /** The input profile (prompt tokens, cost, tier) against the baseline's, worst first. */
  readonly input: readonly FieldDrift[];
}

export interface RouteDrift {
  readonly route: string;
  readonly contract: string;
  /** The version every other one is compared against; null before any answer. */
  readonly baseline: string | null;
  /** True when the baseline is routes[].drift.baselineVersion, false when it is the busiest version. */
  readonly pinned: boolean;
  /** Answers of versions beyond drift.maxVersions, not profiled. */
  readonly droppedAnswers: number;
  readonly versions: readonly VersionDrift[];
}

export interface CompareOptions {
  readonly minSamples: number;
  readonly thresholds: DriftThresholds;
}

export function compareVersion(
  version: VersionProfile,
  baseline: VersionProfile | undefined,
  options: CompareOptions,
): VersionDrift {
  const about = { version: version.version, samples: version.samples };
  if (baseline === version) return { ...about, verdict: "baseline", fields: [], input: [] };
  if (baseline === undefined || version.samples < options.minSamples || baseline.samples < options.minSamples)
    return { ...about, verdict: "insufficient_data", fields: [], input: [] };
  const fields = compareFields(version.fields, baseline.fields, options);
  const input = compareFields(version.input, baseline.input, options);
  // Outputs that moved with their inputs cannot be put on the model: the inputs are named first.
  const verdict = input.some(isDrifting) ? "input_drift" : fields.some(isDrifting) ? "model_drift" : "stable";
  return { ...about, verdict, fields, input };
}

function isDrifting(field: FieldDrift): boolean {
  return field.drifting.length > 0;
}

function compareFields(
  mine: readonly FieldProfile[],
  theirs: readonly FieldProfile[],
  options: CompareOptions,
): FieldDrift[] {
  const drifts: FieldDrift[] = [];
  for (const field of mine) {
    const baseline = theirs.find((other) => other.name === field.name && other.kind === field.kind);
    if (baseline === undefined || field.total === 0 || baseline.total === 0) continue;
    drifts.push(compareField(field, baseline, options));
  }
  return drifts.sort((a, b) => b.severity - a.severity);
}

export function compareField(field: FieldProfile, baseline: FieldProfile, options: CompareOptions): FieldDrift {
  const { thresholds } = options;
  const scores: Partial<Record<DriftMethod, number>> = {
    missing_delta: Math.abs(field.missing / field.total - baseline.missing / baseline.total),
  };
  const enough = field.present >= options.minSamples && baseline.present >= options.minSamples;
  if (enough && field.table !== undefined && baseline.table !== undefined) {
    const [mine, theirs] = alignedShares(field.table, baseline.table);
    scores.psi = psi(mine, theirs);
    scores.js_distance = jsDistance(mine, theirs);
    scores.mode_share_delta = field.table.modeShare() - baseline.table.modeShare();
  }
  if (enough && field.sketch !== undefined && baseline.sketch !== undefined) {
    const [mine, theirs] = decileShares(field.sketch, baseline.sketch);
    scores.psi = psi(mine, theirs);
    scores.wasserstein = normalisedWasserstein(field.sketch, baseline.sketch);
    scores.mode_share_delta = field.sketch.modeShare() - baseline.sketch.modeShare();
    // A baseline without spread has no ratio to collapse from.
    if (baseline.sketch.variance > 0) scores.variance_ratio = field.sketch.variance / baseline.sketch.variance;
  }
  const limits: Record<DriftMethod, number> = {
    psi: thresholds.psi,
    js_distance: thresholds.jsDistance,
    wasserstein: thresholds.wasserstein,
    variance_ratio: thresholds.varianceRatio,
    mode_share_delta: thresholds.modeShareDelta,
    missing_delta: thresholds.missingDelta,
  };
  const drifting: DriftMethod[] = [];
  let severity = 0;
  for (const [method, score] of Object.entries(scores) as [DriftMethod, number][]) {
    // The variance ratio alarms below its threshold (a collapse); every other score above it.
    const past =
      method === "variance_ratio" ? limits.variance_ratio / Math.max(score, Number.MIN_VALUE) : score / limits[method];
    if (past > 1) drifting.push(method);
    severity = Math.max(severity, past);
  }
  return { field: field.name, kind: field.kind, scores, drifting, severity };
}
