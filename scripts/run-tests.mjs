// Runs the unit suite (in parallel) and the end-to-end suite (one file at a time: each file starts
// its own Envoy + guard + demo models, and 2 cores do not take more) with tap, echoes the TAP
// output, and ends with one line "N passed, N failed" over test cases, which CI reads.
//
// What is counted. A *test case* is a test that makes at least one assertion of its own: a
// `t.test(...)` at any depth (or a test file's top level) with one or more assertions directly in
// its body, not only in nested `t.test(...)`s. A test that merely groups subtests is not a case;
// its subtests are. A case fails when one of its own assertions fails (a thrown error or a timeout
// is reported by tap as a failing assertion of the test it happened in); a test that fails with no
// failing assertion anywhere below it (a crashed file, a plan mismatch) counts as one failed case
// too, so no failure goes uncounted. A case whose assertions were all skipped is reported as
// skipped and is neither passed nor failed. The count depends only on the code, not on timing:
// loops that assert a varying number of times change the assertion count (printed beside it),
// not the case count.
//
// Coverage. With no suite named (`make test`), both suites run with NODE_V8_COVERAGE set, which
// every Node process inherits: tap's test processes and the guards and demo models the end-to-end
// tests spawn (they exit through their own SIGTERM handlers, so V8 writes their coverage). c8
// (.c8rc.json) then maps it through the source maps onto src/**/*.ts, prints a summary and checks
// the thresholds; a miss is counted as one failed test case named "coverage thresholds".
// `node scripts/run-tests.mjs unit` (make test-unit) runs without coverage, to stay fast.
//
// Static checks. `make test` (and the suite name "checks") also runs the tree's static checks, the
// same commands as `make lint` and `make layers`, each counted as one test case, so a lint or layer
// violation fails CI's closing line like any other failure.
import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { delimiter, dirname, resolve } from "node:path";
import { Parser } from "tap-parser";

// Every process below runs on the Node that runs this script (under make: the Node 24 pinned in
// .nvmrc, in .tools/node): npx, tap and the test files find `node` through PATH (shebang
// `#!/usr/bin/env node`), so its directory goes first, and a run started with another Node's full
// path does not test on the machine's default one. The version is printed so a log shows it.
const childEnv = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ""}` };
console.log(`Node ${process.version} (${process.execPath})`);

const suites = {
  unit: ["--jobs=2", "--timeout=180", "dist/test/unit/**/*.test.js"],
  e2e: ["--jobs=1", "--timeout=600", "dist/test/e2e/**/*.test.js"],
};
const staticChecks = {
  "lint and format (biome ci)": ["biome", "ci", "--error-on-warnings", "--colors=off", "."],
  "layer rules (dependency-cruiser)": ["depcruise", "--config", ".dependency-cruiser.cjs", "src", "test", "bench"],
};
const named = process.argv.slice(2);
for (const name of named) {
  if (!(name in suites) && name !== "checks") {
    console.error(`unknown suite "${name}" (expected: checks, ${Object.keys(suites).join(", ")})`);
    process.exit(2);
  }
}
const runChecks = named.length === 0 || named.includes("checks");
const selected = named.length > 0 ? named.filter((name) => name in suites) : Object.keys(suites);
const withCoverage = named.length === 0;
// c8's default temp directory (so a plain `npx c8 report` redoes the last report). Not under .tap/:
// every `tap run` empties .tap/coverage, which would drop the unit suite's data before the e2e run's.
const COVERAGE_DATA = resolve("coverage", "tmp");

/** Case and assertion totals of one TAP stream, per the definition at the top of this file. */
function tally(parser) {
  const totals = { passed: 0, failed: 0, skipped: 0, assertions: 0, failedAssertions: 0, failures: [] };
  const fail = (path) => {
    totals.failed++;
    totals.failures.push(path.join(" > "));
  };
  /** Watches one test; the returned state says whether a failure was counted in it or below it. */
  const watch = (test, path) => {
    const state = { counted: false, passed: false };
    let own = 0;
    let ownFailed = 0;
    let ownSkipped = 0;
    let openChild;
    test.on("child", (child) => {
      openChild = { path: [...path, child.name], state: watch(child, [...path, child.name]) };
    });
    test.on("assert", (point) => {
      const failed = !point.ok && !point.todo && !point.skip;
      if (openChild !== undefined) {
        // The test point that closes a subtest reports the subtest, not an assertion of this test;
        // a failed subtest whose failure was not counted inside it (a crashed file) counts here.
        const child = openChild;
        openChild = undefined;
        if (failed && !child.state.counted) {
          // e.g. a plan mismatch: its assertions passed, the test did not
          if (child.state.passed) totals.passed--;
          fail(child.path);
        }
        state.counted ||= failed;
        return;
      }
      own++;
      if (failed) ownFailed++;
      if (point.skip) ownSkipped++;
    });
    test.on("complete", () => {
      totals.assertions += own;
      totals.failedAssertions += ownFailed;
      if (ownFailed > 0) {
        fail(path);
        state.counted = true;
      } else if (own > 0) {
        if (ownSkipped === own) totals.skipped++;
        else {
          totals.passed++;
          state.passed = true;
        }
      }
    });
    return state;
  };
  watch(parser, []);
  return totals;
}

function runSuite(name) {
  return new Promise((done) => {
    const args = ["tap", "run", "--disable-coverage", "--reporter=tap", ...suites[name]];
    const child = spawn("npx", args, {
      stdio: ["ignore", "pipe", "inherit"],
      env: {
        ...childEnv,
        TAP_COLORS: "0",
        ...(withCoverage ? { NODE_V8_COVERAGE: COVERAGE_DATA } : {}),
      },
    });
    const parser = new Parser();
    const totals = tally(parser);
    child.stdout.on("data", (chunk) => {
      process.stdout.write(chunk);
      parser.write(chunk);
    });
    // "close", not "exit": the child may exit with its last lines still in the pipe.
    child.on("error", (error) => {
      totals.failed++;
      totals.failures.push(`${name}: could not start tap: ${error.message}`);
    });
    child.on("close", (code) => {
      parser.end();
      if (code !== 0 && totals.failed === 0) {
        totals.failed = 1;
        totals.failures.push(`${name}: tap exited with ${code} and no failing test`);
      }
      done(totals);
    });
  });
}

/** Runs a devDependency's command with its output shown; resolves with its exit code. */
function npx(args) {
  return new Promise((done) => {
    const child = spawn("npx", args, { stdio: "inherit", env: childEnv });
    child.on("error", () => done(1));
    child.on("close", (code) => done(code ?? 1));
  });
}

const c8 = (command) => npx(["c8", command]);

const all = { passed: 0, failed: 0, skipped: 0, assertions: 0, failedAssertions: 0, failures: [] };
if (runChecks) {
  for (const [name, args] of Object.entries(staticChecks)) {
    console.log(`\n${name}:`);
    if ((await npx(args)) === 0) all.passed++;
    else {
      all.failed++;
      all.failures.push(name);
    }
  }
}
if (withCoverage) await rm(COVERAGE_DATA, { recursive: true, force: true });
for (const name of selected) {
  const totals = await runSuite(name);
  console.log(
    `\n${name}: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped test cases ` +
      `(${totals.assertions} assertions, ${totals.failedAssertions} failed)`,
  );
  for (const key of Object.keys(all))
    all[key] = key === "failures" ? [...all.failures, ...totals.failures] : all[key] + totals[key];
}
if (withCoverage) {
  console.log("\ncoverage of src/ (unit + e2e):");
  await c8("report");
  if ((await c8("check-coverage")) !== 0) {
    all.failed++;
    all.failures.push("coverage thresholds (.c8rc.json)");
  }
}
for (const failure of all.failures) console.log(`failed: ${failure}`);
console.log(`assertions: ${all.assertions - all.failedAssertions} passed, ${all.failedAssertions} failed`);
console.log(`${all.passed} passed, ${all.failed} failed`);
process.exit(all.failed > 0 ? 1 : 0);
