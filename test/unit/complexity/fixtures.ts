// Shared test helpers: fixture files (read from the source tree; tests run from dist/) and a
// seeded PRNG so noisy synthetic data is the same on every run.
import { readFileSync, readdirSync } from "node:fs";

const FIXTURES = new URL("../../../../test/fixtures/complexity/", import.meta.url);

export function fixtureBytes(name: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(name, FIXTURES)));
}

export function fixtureJson(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(name, FIXTURES), "utf8")) as Record<string, unknown>;
}

export function corpus(): Array<{ name: string; text: string }> {
  const directory = new URL("corpus/", FIXTURES);
  return readdirSync(directory)
    .sort()
    .map((name) => ({ name, text: readFileSync(new URL(name, directory), "utf8") }));
}

/** mulberry32: small, fast, good enough for test noise. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = Math.imul(state ^ (state >>> 15), 1 | state);
    mixed = (mixed + Math.imul(mixed ^ (mixed >>> 7), 61 | mixed)) ^ mixed;
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal sample (Box-Muller). */
export function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}
