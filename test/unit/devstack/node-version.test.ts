import { readFile } from "node:fs/promises";
import { join } from "node:path";
import t from "tap";
import { PROJECT_ROOT } from "../../../src/devstack/envoy.js";

// The product targets the Node release pinned in .nvmrc (Node 24 LTS). The toolchain installs it
// (scripts/install-node.sh) and runs the tests on it, the container ships it and package.json
// declares its major; a version bump that misses one of these places would test one Node and ship
// another.
t.test("the tests, the Dockerfile and package.json use the Node pinned in .nvmrc", async (t) => {
  const pinned = (await readFile(join(PROJECT_ROOT, ".nvmrc"), "utf8")).trim();
  t.match(pinned, /^\d+\.\d+\.\d+$/, ".nvmrc holds one exact version");
  const major = pinned.split(".")[0];

  // Under make, .tools/node/bin comes first on PATH; a run on another Node would prove nothing
  // about the one the product targets.
  t.equal(process.version, `v${pinned}`, "the tests run on the pinned Node (run them through make)");

  const dockerfile = await readFile(join(PROJECT_ROOT, "Dockerfile"), "utf8");
  const bases = [...dockerfile.matchAll(/^FROM node:(\S+)/gm)].map((match) => match[1]);
  t.same(bases, [`${pinned}-slim`, `${pinned}-slim`], "both Dockerfile stages");

  const manifest = JSON.parse(await readFile(join(PROJECT_ROOT, "package.json"), "utf8")) as {
    engines?: { node?: string };
  };
  t.equal(manifest.engines?.node, `>=${major}`, "package.json engines.node");
});
