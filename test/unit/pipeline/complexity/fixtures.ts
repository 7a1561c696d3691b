// Shared test helpers: fixture files (read from the source tree; tests run from dist/) and a
// seeded PRNG so noisy synthetic data is the same on every run.
import { readdirSync, readFileSync } from "node:fs";

export { gaussian, seededRandom } from "../../../../src/util/seeded-random.js";

const FIXTURES = new URL("../../../../../test/fixtures/complexity/", import.meta.url);

export function fixtureBytes(name: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(name, FIXTURES)));
}

export function fixtureJson(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(name, FIXTURES), "utf8")) as Record<string, unknown>;
}

/** The token estimator's calibration texts ("corpus") or the texts written after it ("heldout"). */
export function corpus(set: "corpus" | "heldout" = "corpus"): Array<{ name: string; text: string }> {
  const directory = new URL(`${set}/`, FIXTURES);
  return readdirSync(directory)
    .filter((name) => name.endsWith(".txt"))
    .sort()
    .map((name) => ({ name, text: readFileSync(new URL(name, directory), "utf8") }));
}
