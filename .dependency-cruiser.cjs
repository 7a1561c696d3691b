// The layer rules of docs/architecture.md, checked on every import (type-only imports included):
// `make layers` / `npm run layers`. A rule that fails is fixed in the code, not here.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "runtime-without-dev-stack",
      comment:
        "The guard never needs the demo model or the dev stack: the image leaves both out (Dockerfile), so nothing else may import them.",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/(demo|devstack)/" },
      to: { path: "^src/(demo|devstack)/" },
    },
    {
      name: "no-circular",
      severity: "error",
      comment: "No module reaches itself through its imports.",
      from: {},
      to: { circular: true },
    },
    {
      name: "ext-proc-protocol-in-extproc-only",
      severity: "error",
      comment:
        "Only src/extproc/ touches the ext_proc protobuf: its message types (wire.ts), the codec (proto.ts) and " +
        "the package that ships Envoy's .proto files. Everyone else deals in the pipeline's plain values.",
      from: { path: "^src/", pathNot: "^src/extproc/" },
      to: { path: ["^src/extproc/(wire|proto)\\.ts$"] },
    },
    {
      name: "pipeline-not-transport",
      severity: "error",
      comment: "Pipeline stages know nothing of ext_proc or gRPC: they never import src/extproc/ or src/server/.",
      from: { path: "^src/pipeline/" },
      to: { path: "^src/(extproc|server)/" },
    },
    {
      name: "extproc-not-server",
      severity: "error",
      comment:
        "src/extproc/ speaks ext_proc over a small call interface of its own (ProcessCall); the gRPC server " +
        "adapts its calls to it, so extproc never imports src/server/ (nor src/config/: it gets plain values).",
      from: { path: "^src/extproc/" },
      to: { path: "^src/(server|config|devstack|demo)/" },
    },
    {
      name: "server-is-the-top",
      severity: "error",
      comment: "src/server/ composes the running process; only the command line (src/cli.ts) imports it.",
      from: { path: "^src/", pathNot: ["^src/server/", "^src/cli\\.ts$"] },
      to: { path: "^src/server/" },
    },
    {
      name: "pipeline-not-config",
      severity: "error",
      comment:
        "A stage owns its schema (its config.ts) and is handed its own section as plain values; it never " +
        "imports src/config/, the composition of every section.",
      from: { path: "^src/pipeline/" },
      to: { path: "^src/config/" },
    },
    {
      name: "stages-independent",
      severity: "error",
      comment:
        "A stage folder imports no other stage folder (stages feed each other through the Exchange), and " +
        "neither the line-up (build.ts) nor the runner (pipeline.ts). Identity (who a request is, derived by " +
        "the runner before any stage) is shared.",
      from: { path: "^src/pipeline/([^/]+)/" },
      to: {
        path: ["^src/pipeline/[^/]+/", "^src/pipeline/(build|pipeline)\\.ts$"],
        pathNot: ["^src/pipeline/$1/", "^src/pipeline/identity/"],
      },
    },
    {
      name: "shared-pipeline-modules-below-stages",
      severity: "error",
      comment:
        "The pipeline's shared modules (src/pipeline/*.ts: types, answers, request shape, JSON body) are what " +
        "stages build on, so they import no stage folder; only the line-up (build.ts) knows the stages, and the " +
        "answers doc generator (answers-doc.ts) shows the stages' own answers. Route matching (routing/) and " +
        "identity (identity/: tenant and priority class, derived before any stage runs) are shared.",
      from: { path: "^src/pipeline/[^/]+\\.ts$", pathNot: "^src/pipeline/(build|answers-doc)\\.ts$" },
      to: { path: "^src/pipeline/[^/]+/", pathNot: "^src/pipeline/(routing|identity)/" },
    },
    {
      name: "schema-modules-are-leaves",
      severity: "error",
      comment:
        "A stage's schema module (src/pipeline/<stage>/config.ts) is zod plus the shared schema kit " +
        "(src/config-kit/) plus its own folder, so src/config/ can compose it without pulling in stage code.",
      from: { path: "^src/pipeline/([^/]+)/config\\.ts$" },
      to: { path: "^src/", pathNot: ["^src/config-kit/", "^src/pipeline/$1/"] },
    },
    {
      name: "config-composes-schemas-only",
      severity: "error",
      comment:
        "src/config/ reads the stages' schema modules and nothing else of src/pipeline/; it never imports the " +
        "transport (extproc, server) or metrics.",
      from: { path: "^src/config/" },
      to: {
        path: ["^src/pipeline/", "^src/(extproc|server|metrics|demo|devstack)/"],
        pathNot: "^src/pipeline/[^/]+/config\\.ts$",
      },
    },
    {
      name: "leaves-stay-leaves",
      severity: "error",
      comment: "src/metrics/, src/config-kit/ and src/util/ import nothing else of src/ (node_modules only).",
      from: { path: "^src/(metrics|config-kit|util)/" },
      to: { path: "^src/", pathNot: "^src/$1/" },
    },
    {
      name: "streams-is-a-leaf",
      severity: "error",
      comment:
        "src/streams/ (SSE and NDJSON framing, streamed answers assembled into documents) imports nothing else of src/ but " +
        "src/util/ (node_modules aside): the ext_proc stream and the stages call it, never the other way.",
      from: { path: "^src/streams/" },
      to: { path: "^src/", pathNot: ["^src/streams/", "^src/util/"] },
    },
    {
      name: "contracts-know-nothing-of-envoy",
      severity: "error",
      comment:
        "src/contracts/ (compiling and checking output contracts) imports no pipeline, transport or Envoy code.",
      from: { path: "^src/contracts/" },
      to: { path: ["^src/(pipeline|extproc|server|devstack|demo)/", "^node_modules/@grpc/"] },
    },
    {
      name: "contracts-not-config",
      severity: "error",
      comment:
        "src/config/ composes src/contracts/config.ts, so contracts code never imports src/config/ (the " +
        "`check` and `lint` commands, which read config files, live in src/commands/).",
      from: { path: "^src/contracts/" },
      to: { path: "^src/config/" },
    },
    {
      name: "programs-apart",
      severity: "error",
      comment:
        "The demo model server (src/demo/) and the dev stack launcher (src/devstack/) are separate programs: " +
        "the guard never imports them.",
      from: { path: "^src/", pathNot: "^src/(demo|devstack)/" },
      to: { path: "^src/(demo|devstack)/" },
    },
    {
      name: "src-not-tests-or-bench",
      severity: "error",
      comment: "Product code never imports tests, test helpers or benchmarks.",
      from: { path: "^src/" },
      to: { path: "^(test|bench)/" },
    },
    {
      name: "no-importing-test-files",
      severity: "error",
      comment: "A test file is run, never imported: shared test code lives in test/helpers/ or beside as a module.",
      from: {},
      to: { path: "\\.test\\.ts$" },
    },
    {
      name: "src-not-dev-dependencies",
      severity: "error",
      comment:
        "What src/ imports must be a runtime dependency: devDependencies are absent in production installs. The demo model and the dev stack are not in the image (runtime-without-dev-stack).",
      from: { path: "^src/", pathNot: "^src/(demo|devstack)/" },
      to: { dependencyTypes: ["npm-dev"] },
    },
    {
      name: "not-to-unresolvable",
      severity: "error",
      comment: "Every import resolves.",
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^dist/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      extensions: [".ts", ".js", ".d.ts"],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
