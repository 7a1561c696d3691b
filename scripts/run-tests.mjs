// Runs the unit suite (in parallel) and the end-to-end suite (one file at a time: each file starts
// its own Envoy + guard + demo models, and 2 cores do not take more) with tap, echoes the TAP
// output, and ends with one line "N passed, N failed" summed over both suites.
import { spawn } from "node:child_process";

const suites = {
  unit: ["--jobs=2", "--timeout=180", "dist/test/unit/**/*.test.js"],
  e2e: ["--jobs=1", "--timeout=600", "dist/test/e2e/**/*.test.js"],
};
const selected = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(suites);

function runSuite(name) {
  return new Promise((resolve) => {
    const args = ["tap", "run", "--disable-coverage", "--reporter=tap", ...suites[name]];
    const child = spawn("npx", args, {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, TAP_COLORS: "0" },
    });
    let summary = { pass: 0, fail: 0 };
    let tail = "";
    child.stdout.on("data", (chunk) => {
      process.stdout.write(chunk);
      tail = (tail + chunk.toString()).slice(-4096);
    });
    child.on("exit", (code) => {
      // tap's closing summary: "# { total: 23, pass: 22, fail: 1, skip: 0 }"
      const match = /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?/.exec(tail);
      if (match) summary = { pass: Number(match[2] ?? 0), fail: Number(match[3] ?? 0) };
      if (code !== 0 && summary.fail === 0) summary.fail = 1;
      resolve(summary);
    });
  });
}

let passed = 0;
let failed = 0;
for (const name of selected) {
  if (!(name in suites)) {
    console.error(`unknown suite "${name}" (expected: ${Object.keys(suites).join(", ")})`);
    process.exit(2);
  }
  const { pass, fail } = await runSuite(name);
  console.log(`\n${name}: ${pass} passed, ${fail} failed`);
  passed += pass;
  failed += fail;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
