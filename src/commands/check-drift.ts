// `inference-guard check --baseline <v1.jsonl> <v2.jsonl>`: the drift monitor's comparison, offline,
// for release pipelines. Both recordings (one answer body per line) are profiled through the
// contract's fields, as the running guard profiles a model version, and the candidate is scored
// against the baseline with the same scores and thresholds. Exit codes: 0 stable, 1 drifting,
// 2 too few answers to judge (never a false "stable") or unreadable input.
import { open } from "node:fs/promises";
import type { Contract } from "../contracts/contract.js";
import { answerShape, observePayloads, payloadsOf } from "../pipeline/drift/answers.js";
import { type CompareOptions, compareVersion, type FieldDrift } from "../pipeline/drift/compare.js";
import { type ProfileOptions, VersionProfile } from "../pipeline/drift/profile.js";
import type { CliIo } from "./io.js";

export interface DriftCheckSettings extends CompareOptions {
  readonly profile: ProfileOptions;
  readonly maxFields: number;
}

/** The recording's answers into a profile; unreadable lines are counted, blank ones skipped. */
async function profileOf(
  file: string,
  version: string,
  contract: Contract,
  settings: DriftCheckSettings,
): Promise<{ profile: VersionProfile; unreadable: number }> {
  const shape = answerShape(contract, settings.maxFields);
  if (shape === undefined) throw new Error(`the contract's payload path "${contract.spec.payload}" does not parse`);
  const profile = new VersionProfile(version, shape.specs, settings.profile);
  let unreadable = 0;
  const handle = await open(file).catch((error: Error) => {
    throw new Error(`cannot read ${file}: ${error.message}`);
  });
  try {
    for await (const line of handle.readLines()) {
      if (line.trim() === "") continue;
      let body: unknown;
      try {
        body = JSON.parse(line);
      } catch {
        unreadable++;
        continue;
      }
      observePayloads(profile, shape, payloadsOf(shape, body));
    }
  } finally {
    await handle.close();
  }
  return { profile, unreadable };
}

function fieldLine(field: FieldDrift): string {
  const scores = Object.entries(field.scores)
    .map(
      ([method, score]) =>
        `${method}=${Number(score.toFixed(4))}${field.drifting.includes(method as never) ? "!" : ""}`,
    )
    .join(" ");
  return `  ${field.drifting.length > 0 ? "DRIFT " : "      "}${field.field} (${field.kind}): ${scores}`;
}

export async function runDriftCheck(
  contract: Contract,
  settings: DriftCheckSettings,
  files: { readonly baseline: string; readonly candidate: string },
  format: "text" | "json",
  io: CliIo,
): Promise<number> {
  let baseline: Awaited<ReturnType<typeof profileOf>>;
  let candidate: Awaited<ReturnType<typeof profileOf>>;
  try {
    baseline = await profileOf(files.baseline, "baseline", contract, settings);
    candidate = await profileOf(files.candidate, "candidate", contract, settings);
  } catch (error) {
    io.err(`check: ${(error as Error).message}`);
    return 2;
  }
  const drift = compareVersion(candidate.profile, baseline.profile, settings);
  const judged = drift.verdict !== "insufficient_data";
  const drifting = drift.fields.filter((field) => field.drifting.length > 0);
  if (format === "json")
    io.out(
      JSON.stringify({
        contract: contract.name,
        baseline: { file: files.baseline, payloads: baseline.profile.samples, unreadable: baseline.unreadable },
        candidate: { file: files.candidate, payloads: candidate.profile.samples, unreadable: candidate.unreadable },
        min_samples: settings.minSamples,
        verdict: drift.verdict,
        fields: drift.fields,
      }),
    );
  else {
    io.out(`contract ${contract.name}: ${files.candidate} against ${files.baseline}`);
    io.out(
      `payloads: baseline ${baseline.profile.samples}, candidate ${candidate.profile.samples} (at least ${settings.minSamples} each to judge)`,
    );
    for (const field of drift.fields) io.out(fieldLine(field));
    io.out(
      `verdict: ${judged ? (drifting.length > 0 ? `drift in ${drifting.map((field) => field.field).join(", ")}` : "stable") : "insufficient data"}`,
    );
  }
  if (!judged) {
    io.err(`check: too few payloads to judge drift (need ${settings.minSamples} on each side)`);
    return 2;
  }
  return drifting.length > 0 ? 1 : 0;
}
