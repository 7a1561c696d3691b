import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import t from "tap";

// A class extending String leaves String.prototype in V8's dictionary mode for the whole process,
// and every String.prototype call in optimised code (the token estimate's charCodeAt, the protobuf
// UTF-8 writer) then runs ~4x slower. ioredis 6.0 did that (its RESP3 VerbatimString); 6.1 puts the
// prototype back in fast mode. Checked in a fresh process, where V8 reports the prototype's mode.
const ioredis = createRequire(import.meta.url).resolve("ioredis");

function stringPrototypeFast(load: string): string {
  const result = spawnSync(
    process.execPath,
    ["--allow-natives-syntax", "-e", `${load}; process.stdout.write(String(%HasFastProperties(String.prototype)))`],
    { encoding: "utf8" },
  );
  return result.stdout + result.stderr;
}

t.test("loading the Redis client keeps String.prototype fast", async (t) => {
  t.equal(stringPrototypeFast("class Verbatim extends String {}"), "false", "the probe sees the slow mode");
  t.equal(stringPrototypeFast(`require(${JSON.stringify(ioredis)})`), "true", "ioredis leaves it fast");
});
