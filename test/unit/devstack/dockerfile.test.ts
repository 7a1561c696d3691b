// The image cannot be built here (no container engine, and base images come from a registry this
// machine cannot reach), so its recipe is checked against what the guard needs at run time: the
// files its code reads beside dist/, the package manifest's entry point and production
// dependencies, the probes, and what it must leave out.
import { readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import t from "tap";
import { DEFAULT_CONFIG_PATH } from "../../../src/cli.js";
import { configSchema } from "../../../src/config/schema.js";
import { PROTOVALIDATE_DIR } from "../../../src/contracts/buf.js";
import { PROJECT_ROOT } from "../../../src/devstack/envoy.js";
import { ENVOY_API_DIR } from "../../../src/extproc/proto.js";
import { STATUS_ASSETS_DIR } from "../../../src/server/status/page.js";

interface Stage {
  readonly from: string;
  readonly name?: string | undefined;
  readonly lines: readonly string[];
}

async function stages(): Promise<Stage[]> {
  const text = (await readFile(join(PROJECT_ROOT, "Dockerfile"), "utf8")).replace(/\\\n\s*/g, " ");
  const result: Array<{ from: string; name?: string | undefined; lines: string[] }> = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "" || line.startsWith("#")) continue;
    const [, from, name] = /^FROM (\S+)(?: AS (\S+))?/.exec(line) ?? [];
    if (from !== undefined) result.push({ from, name, lines: [] });
    else result.at(-1)?.lines.push(line);
  }
  return result;
}

/** Where a COPY into the runtime's /app puts something: its destination relative to /app. */
const copiedTo = (stage: Stage): string[] =>
  stage.lines.flatMap((line) => {
    const match = /^COPY (?:--from=\S+ )?(\S+) (\S+)$/.exec(line);
    if (match?.[1] === undefined || match[2] === undefined) return [];
    // Into a directory ("./"), a file keeps its name.
    const into = match[2].endsWith("/") ? `${match[2]}${match[1].split("/").at(-1)}` : match[2];
    return [into.replace(/^\.\//, "")];
  });

t.test("the runtime stage has what the guard reads beside dist/, and nothing of the dev stack", async (t) => {
  const all = await stages();
  const runtime = all.at(-1);
  const build = all.find((stage) => stage.from.startsWith("node:") && stage !== runtime);
  if (runtime === undefined || build === undefined) return t.fail("a build and a runtime stage");
  const copied = copiedTo(runtime);
  const manifest = JSON.parse(await readFile(join(PROJECT_ROOT, "package.json"), "utf8")) as {
    bin: Record<string, string>;
    dependencies: Record<string, string>;
  };
  const needed = [
    ...Object.values(manifest.bin).map((file) => file.split("/")[0] ?? file),
    relative(PROJECT_ROOT, DEFAULT_CONFIG_PATH).split("/")[0] ?? "",
    relative(PROJECT_ROOT, ENVOY_API_DIR),
    relative(PROJECT_ROOT, PROTOVALIDATE_DIR),
    "dist/src",
    "node_modules",
    "package.json",
    // The embedded default config's contracts (contracts.protoPaths, relative to /app).
    "proto",
  ];
  for (const path of needed) t.ok(copied.includes(path), `the image has ${path}`);
  t.notOk(
    copied.some((path) => /^(test|bench|tools|scripts|envoy|deploy|ops)(\/|$)/.test(path)),
    "no tests, benchmarks or dev tooling",
  );

  const buildSteps = build.lines.join("\n");
  t.match(buildSteps, /npm ci /, "dependencies from the lock file");
  t.match(buildSteps, /rm -rf dist\/src\/demo dist\/src\/devstack/, "the demo model and the dev stack are left out");
  t.match(buildSteps, /npm prune --omit=dev/, "production dependencies only");
  t.match(
    buildSteps,
    new RegExp(`cp -r src/server/status/assets ${relative(PROJECT_ROOT, STATUS_ASSETS_DIR).replace(/\/$/, "")}`),
    "the status page's files where the module serving them reads them",
  );
  t.notOk(
    copied.some((path) => path.startsWith("src")),
    "no source tree in the image",
  );
  t.ok(Object.keys(manifest.dependencies).length > 0);

  const runtimeSteps = runtime.lines.join("\n");
  t.notMatch(
    runtimeSteps,
    /apt-get|protobuf-compiler/,
    "no system packages: contracts compile with buf from node_modules",
  );
  const user = /^USER (\d+):(\d+)$/m.exec(runtimeSteps);
  t.ok(user !== null && Number(user[1]) > 0 && Number(user[2]) > 0, "runs as a non-root user and group");
  const admin = configSchema.parse({}).listen.admin;
  t.match(runtimeSteps, new RegExp(`HEALTHCHECK .*fetch\\('http://${admin.replace(/\./g, "\\.")}/healthz'\\)`));
  t.match(runtimeSteps, new RegExp(`ENTRYPOINT \\[.*"/app/${Object.values(manifest.bin)[0]}"\\]`));
});

t.test("gen/protovalidate is printed from the descriptor the build stage's packages embed", async (t) => {
  const all = await stages();
  const runtime = all.at(-1);
  const build = all.find((stage) => stage.name === "build");
  const printer = all.find((stage) => stage.lines.some((line) => line === "COPY tools/protovalidate ./"));
  if (runtime === undefined || build === undefined || printer === undefined) {
    return t.fail("a build stage, a stage running tools/protovalidate and a runtime stage");
  }
  const set = /^RUN node scripts\/protovalidate-set\.mjs > (\S+)$/m.exec(build.lines.join("\n"))?.[1];
  t.ok(set !== undefined, "the build stage writes the descriptor set after npm ci");
  const npmCi = build.lines.findIndex((line) => /^RUN npm ci /.test(line));
  const written = build.lines.findIndex((line) => line.includes("protovalidate-set.mjs >"));
  t.ok(npmCi >= 0 && written > npmCi, "from the installed packages");
  const printerSteps = printer.lines.join("\n");
  t.match(printerSteps, new RegExp(`COPY --from=build ${set} `), "the printer reads that set");
  const out = /^RUN go run \. (\S+) < /m.exec(printerSteps)?.[1];
  t.ok(out !== undefined, "the printer writes a directory");
  t.ok(
    runtime.lines.includes(`COPY --from=${printer.name} ${out} ./${relative(PROJECT_ROOT, PROTOVALIDATE_DIR)}`),
    "the runtime has it where the guard reads it",
  );
  const buildSteps = build.lines.join("\n");
  t.match(
    buildSteps,
    /rm -f node_modules\/@bufbuild\/buf-\*\/bin\/protoc-gen-buf-\*/,
    "buf's unused plugins are dropped",
  );
  t.notMatch(buildSteps, /--omit=optional|--no-optional/, "the buf binary (an optional dependency) is kept");
});
