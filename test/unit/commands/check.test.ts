import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { runCheck } from "../../../src/commands/check.js";
import { MAX_FIELD_KEYS } from "../../../src/commands/check-summary.js";
import { runLint } from "../../../src/commands/lint.js";
import { demoResponseBody, TASKS } from "../../../src/demo/outputs.js";
import { DEMO_PROTO } from "../contracts/fixtures.js";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (line: string) => out.push(line), err: (line: string) => err.push(line) }, out, err };
}

async function tempDir(t: { teardown: (fn: () => unknown) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "check-cli-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test("check --proto: one JSON line per input line, exit 1 when any is invalid", async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, "out.jsonl");
  await writeFile(
    file,
    [
      JSON.stringify({ label: "POSITIVE", score: 0.8 }),
      "",
      JSON.stringify({ label: "POSITIVE", score: 80 }),
      "not json",
    ].join("\n"),
  );
  const { io, out } = capture();
  t.equal(await runCheck(["--proto", DEMO_PROTO, "--message", "demo.v1.Sentiment", file], io), 1);
  t.same(
    out.map((line) => JSON.parse(line)),
    [
      { line: 1, valid: true, verdict: "passed", model_version: null, violations: [] },
      {
        line: 3,
        valid: false,
        verdict: "violated",
        model_version: null,
        violations: [
          {
            field: "score",
            rule: "double.gte_lte",
            message: "must be greater than or equal to 0 and less than or equal to 1",
          },
        ],
      },
      {
        line: 4,
        valid: false,
        verdict: "unverifiable",
        model_version: null,
        violations: [
          {
            field: "$",
            rule: "json.syntax",
            message: `body is not JSON: Unexpected token 'o', "not json" is not valid JSON`,
          },
        ],
      },
    ],
  );
});

t.test("check catches every break of the catalogue offline and passes v1", async (t) => {
  const dir = await tempDir(t);
  const flags: Record<string, string[]> = {
    sentiment: ["--message", "demo.v1.Sentiment"],
    eta: ["--message", "demo.v1.DeliveryEta"],
    embedding: ["--message", "demo.v1.Embedding", "--payload", "data[*].embedding", "--wrap-field", "values"],
    chat_structured: ["--message", "demo.v1.TicketTriage", "--payload", "choices[*].message.content<json>"],
  };
  for (const [task, outputs] of Object.entries(TASKS)) {
    const input = { text: "my invoice" };
    const breaks = join(dir, `${task}-v2.jsonl`);
    await writeFile(
      breaks,
      `${Object.values(outputs.breaks)
        .map((render) => JSON.stringify(demoResponseBody(task, render(input))))
        .join("\n")}\n`,
    );
    const broken = capture();
    t.equal(await runCheck(["--proto", DEMO_PROTO, ...(flags[task] ?? []), breaks], broken.io), 1, task);
    t.equal(broken.out.length, Object.keys(outputs.breaks).length);
    t.ok(
      broken.out.every((line) => JSON.parse(line).valid === false),
      `${task}: every break flagged`,
    );
    const good = join(dir, `${task}-v1.jsonl`);
    await writeFile(good, `${JSON.stringify(demoResponseBody(task, outputs.conforming(input)))}\n`);
    const passed = capture();
    t.equal(await runCheck(["--proto", DEMO_PROTO, ...(flags[task] ?? []), good], passed.io), 0, `${task} v1 passes`);
  }
});

t.test("check --config uses the route's binding and model version field", async (t) => {
  const dir = await tempDir(t);
  const config = join(dir, "guard.yaml");
  await writeFile(
    config,
    `contracts:\n  protoPaths: ["${DEMO_PROTO}"]\nroutes:\n  - name: chat\n    match: { pathPrefix: /v1/chat }\n    contract:\n      message: demo.v1.TicketTriage\n      payload: "choices[*].message.content<json>"\n      modelVersionField: model\n`,
  );
  const file = join(dir, "chat.jsonl");
  const content = JSON.stringify({
    category: "billing",
    priority: 3,
    tags: [],
    summary: "s",
    needs_human: false,
    prio: 1,
  });
  await writeFile(file, `${JSON.stringify({ model: "triage-2", choices: [{ message: { content: content } }] })}\n`);
  for (const name of ["chat", "demo.v1.TicketTriage"]) {
    const { io, out } = capture();
    t.equal(await runCheck(["--config", config, "--contract", name, file], io), 1);
    t.same(JSON.parse(out[0] ?? "{}"), {
      line: 1,
      valid: false,
      verdict: "violated",
      model_version: "triage-2",
      violations: [
        {
          field: "choices[0].message.content<json>.prio",
          rule: "json.unknown_field",
          message: 'unknown field "prio" (not in demo.v1.TicketTriage)',
        },
      ],
    });
  }
  const warned = capture();
  await writeFile(join(dir, "warned.yaml"), `admision: {}\n${await readFile(config, "utf8")}`);
  t.equal(await runCheck(["--config", join(dir, "warned.yaml"), "--contract", "chat", file], warned.io), 1);
  t.match(warned.err[0], /warned\.yaml: warning: admision: unknown section, ignored/, "config warnings are shown");
  const missing = capture();
  t.equal(await runCheck(["--config", config, "--contract", "nope", file], missing.io), 2);
  t.match(missing.err.join("\n"), /no route named "nope"/);
});

t.test("check usage and contract errors exit 2", async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, "x.jsonl");
  await writeFile(file, "{}\n");
  const cases: string[][] = [
    [],
    [file],
    ["--proto", DEMO_PROTO, file],
    ["--proto", DEMO_PROTO, "--message", "demo.v1.Nope", file],
    ["--proto", DEMO_PROTO, "--message", "demo.v1.Sentiment", "--payload", "a[", file],
    ["--proto", DEMO_PROTO, "--message", "demo.v1.Sentiment", join(dir, "missing.jsonl")],
    ["--config", join(dir, "missing.yaml"), "--contract", "x", file],
    ["--bogus"],
  ];
  for (const argv of cases) {
    const { io, err } = capture();
    t.equal(await runCheck(argv, io), 2, argv.join(" "));
    t.ok(err.length > 0, "says why");
  }
  const help = capture();
  t.equal(await runCheck(["--help"], help.io), 0);
  t.match(help.out.join("\n"), /inference-guard check --config/);
});

t.test("lint reports file:line problems and exits 1; clean contracts exit 0", async (t) => {
  const clean = capture();
  t.equal(await runLint(["--proto", DEMO_PROTO], clean.io), 0);
  t.match(clean.out[0], /^ok: 4 contract messages in 4 files$/);
  const dir = await tempDir(t);
  await writeFile(join(dir, "a.proto"), 'syntax = "proto3";\nmessage A {\n  string x = 1\n}\n');
  const bad = capture();
  t.equal(await runLint(["--proto", dir], bad.io), 1);
  t.same(bad.err, [`${dir}/a.proto:4: unexpected \`}\` after definition`]);
  const help = capture();
  t.equal(await runLint(["-h"], help.io), 0);
  t.match(help.out.join("\n"), /inference-guard lint/);
});

t.test("lint --config reports config errors and the bound contracts' errors in one report", async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, "a.proto"), 'syntax = "proto3";\nmessage A {\n  string x = 1\n}\n');
  const config = join(dir, "guard.yaml");
  await writeFile(
    config,
    `drain: { timeoutMs: -1 }\nadmision: {}\ncontracts:\n  protoPaths: ["${dir}"]\nroutes:\n  - name: a\n    contract: { message: A, payload: "" }\n`,
  );
  const { io, err } = capture();
  t.equal(await runLint(["--config", config], io), 2);
  t.same(err, [
    `${config}: warning: admision: unknown section, ignored (sections: listen, drain, envoy, annotate, log, limits, admin, cache, admission, budget, contracts, drift, canary, usage, identity, tracing, routes)`,
    `${config}: drain.timeoutMs: Too small: expected number to be >=0`,
    `${dir}/a.proto:4: unexpected \`}\` after definition`,
  ]);
});

/** Sentiment payloads under "result": a pass, three violations, an error body, a non-JSON line, a blank. */
const MIXED_RECORDING = [
  JSON.stringify({ result: { label: "POSITIVE", score: 0.8 } }),
  JSON.stringify({ result: { label: "POSITIVE", score: 80 } }),
  "",
  JSON.stringify({ result: { label: "NEGATIVE", score: 0.1, extra: 1 } }),
  JSON.stringify({ error: "overloaded" }),
  "<html>502 Bad Gateway</html>",
  JSON.stringify({ result: { label: "POSITIVE", score: 2 } }),
].join("\n");
const MIXED_FLAGS = ["--proto", DEMO_PROTO, "--message", "demo.v1.Sentiment", "--payload", "result"];
/** Line and verdict of MIXED_RECORDING's non-blank lines. */
const MIXED_VERDICTS = [
  [1, "passed"],
  [2, "violated"],
  [4, "violated"],
  [5, "unverifiable"],
  [6, "unverifiable"],
  [7, "violated"],
];

async function mixedRecording(t: { teardown: (fn: () => unknown) => void }): Promise<string> {
  const file = join(await tempDir(t), "mixed.jsonl");
  await writeFile(file, `${MIXED_RECORDING}\n`);
  return file;
}

t.test("check: an error body or a non-JSON line is unverifiable, not a violation", async (t) => {
  const file = await mixedRecording(t);
  const { io, out } = capture();
  t.equal(await runCheck([...MIXED_FLAGS, file], io), 1);
  t.same(
    out.map((line) => [JSON.parse(line).line, JSON.parse(line).verdict]),
    MIXED_VERDICTS,
  );
});

t.test("check prints a summary on stderr after the per-line results", async (t) => {
  const file = await mixedRecording(t);
  const { io, out, err } = capture();
  t.equal(await runCheck([...MIXED_FLAGS, file], io), 1);
  t.equal(out.length, 6, "stdout keeps one JSON line per non-blank line");
  t.same(err, [
    "check: 7 lines read: 4 checked (1 passed, 3 violated), 2 unverifiable, 1 blank",
    "check: violated lines by rule: double.gte_lte 2, json.unknown_field 1",
    "check: violated lines by field: result.score 2, result.extra 1",
    "check: unverifiable lines by reason: body.not_json 1, payload.missing 1",
    "check: FAIL: violation-ratio 0.75 above --max-violation-ratio 0, unverifiable-ratio 0.3333 above --max-unverifiable-ratio 0",
  ]);
});

t.test("check --max-violation-ratio and --max-unverifiable-ratio tolerate up to their share", async (t) => {
  const file = await mixedRecording(t);
  // 3 of 4 checked lines violated (0.75); 2 of 6 non-blank lines unverifiable (0.333…).
  const cases: [string[], number][] = [
    [["--max-violation-ratio", "0.75", "--max-unverifiable-ratio", "0.34"], 0],
    [["--max-violation-ratio", "0.74", "--max-unverifiable-ratio", "0.34"], 1],
    [["--max-violation-ratio", "1", "--max-unverifiable-ratio", "0.33"], 1],
    [["--max-violation-ratio", "1"], 1],
    [["--max-violation-ratio", "7.5e-1", "--max-unverifiable-ratio", ".5"], 0],
  ];
  for (const [flags, status] of cases) {
    const { io, err } = capture();
    t.equal(await runCheck([...MIXED_FLAGS, ...flags, file], io), status, flags.join(" "));
    t.match(err.at(-1), status === 0 ? /^check: ok: / : /^check: FAIL: /);
  }
  const within = capture();
  await runCheck([...MIXED_FLAGS, "--max-violation-ratio", "0.8", "--max-unverifiable-ratio", "0.5", file], within.io);
  t.equal(
    within.err.at(-1),
    "check: ok: violation-ratio 0.75 within --max-violation-ratio 0.8, unverifiable-ratio 0.3333 within --max-unverifiable-ratio 0.5",
  );
});

t.test("check rejects a ratio that is not a number from 0 to 1, and a bad --format", async (t) => {
  const file = await mixedRecording(t);
  for (const value of ["", "abc", "-0.1", "1.5", "0x1", "NaN", "Infinity", " 0.5"]) {
    for (const flag of ["--max-violation-ratio", "--max-unverifiable-ratio"]) {
      const { io, out, err } = capture();
      // The --flag=value form: parseArgs itself refuses a separate value that starts with "-".
      t.equal(await runCheck([...MIXED_FLAGS, `${flag}=${value}`, file], io), 2, `${flag} "${value}"`);
      t.same(out, []);
      t.same(err, [`check: ${flag} must be a number from 0 to 1 (a share of lines), not "${value}"`]);
    }
  }
  const yaml = capture();
  t.equal(await runCheck([...MIXED_FLAGS, "--format", "yaml", file], yaml.io), 2);
  t.same(yaml.err, ['check: --format must be text or json, not "yaml"']);
  const contradiction = capture();
  t.equal(await runCheck([...MIXED_FLAGS, "--json", "--format", "text", file], contradiction.io), 2);
  t.same(contradiction.err, ["check: --json contradicts --format text"]);
});

t.test("check --format json writes one document: the per-line results and the summary", async (t) => {
  const file = await mixedRecording(t);
  for (const flags of [["--format", "json"], ["--json"]]) {
    const { io, out, err } = capture();
    t.equal(await runCheck([...MIXED_FLAGS, ...flags, file], io), 1);
    t.same(err, [], "nothing on stderr");
    const document = JSON.parse(out.join("\n"));
    t.same(Object.keys(document), ["results", "summary"]);
    t.same(
      document.results.map((result: { line: number; verdict: string }) => [result.line, result.verdict]),
      MIXED_VERDICTS,
    );
    t.same(document.results[1].violations, [
      {
        field: "result.score",
        rule: "double.gte_lte",
        message: "must be greater than or equal to 0 and less than or equal to 1",
      },
    ]);
    t.strictSame(document.summary, {
      lines_read: 7,
      blank: 1,
      checked: 4,
      passed: 1,
      violated: 3,
      unverifiable: 2,
      violation_ratio: 0.75,
      unverifiable_ratio: 2 / 6,
      max_violation_ratio: 0,
      max_unverifiable_ratio: 0,
      violated_by_rule: { "double.gte_lte": 2, "json.unknown_field": 1 },
      violated_by_field: { "result.score": 2, "result.extra": 1 },
      unverifiable_by_reason: { "body.not_json": 1, "payload.missing": 1 },
      ok: false,
    });
  }
  const empty = join(await tempDir(t), "empty.jsonl");
  await writeFile(empty, "");
  const none = capture();
  t.equal(await runCheck([...MIXED_FLAGS, "--json", empty], none.io), 0, "nothing to object to");
  const document = JSON.parse(none.out.join("\n"));
  t.same(document.results, []);
  t.match(document.summary, { lines_read: 0, checked: 0, violation_ratio: 0, unverifiable_ratio: 0, ok: true });
});

t.test("check keeps at most MAX_FIELD_KEYS field paths in the summary; the rest count as other", async (t) => {
  const file = join(await tempDir(t), "made-up.jsonl");
  const extra = 5;
  const lines = Array.from({ length: MAX_FIELD_KEYS + extra }, (_, index) =>
    JSON.stringify({ label: "POSITIVE", score: 0.8, [`made_up_${index}`]: true }),
  );
  await writeFile(file, lines.join("\n"));
  const { io, out } = capture();
  t.equal(await runCheck(["--proto", DEMO_PROTO, "--message", "demo.v1.Sentiment", "--json", file], io), 1);
  const { summary } = JSON.parse(out.join("\n"));
  t.equal(summary.violated, MAX_FIELD_KEYS + extra);
  t.same(summary.violated_by_rule, { "json.unknown_field": MAX_FIELD_KEYS + extra });
  t.equal(Object.keys(summary.violated_by_field).length, MAX_FIELD_KEYS + 1);
  t.equal(summary.violated_by_field.other, extra);
  t.equal(summary.violated_by_field.made_up_0, 1);
});

t.test("check: an unreadable input is an input error (exit 2) and writes no results", async (t) => {
  const dir = await tempDir(t);
  for (const format of ["text", "json"]) {
    const { io, out, err } = capture();
    t.equal(await runCheck([...MIXED_FLAGS, "--format", format, dir], io), 2);
    t.same(out, []);
    t.same(err, [`check: cannot read ${dir}: is a directory`]);
  }
});
