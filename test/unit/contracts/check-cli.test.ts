import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { runCheck, runLint } from "../../../src/contracts/check-cli.js";
import { demoResponseBody, TASKS } from "../../../src/demo/outputs.js";
import { DEMO_PROTO } from "./fixtures.js";

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
      { line: 1, valid: true, model_version: null, violations: [] },
      {
        line: 3,
        valid: false,
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
        model_version: null,
        violations: [
          {
            field: "$",
            rule: "json.syntax",
            message: out[2] === undefined ? "" : JSON.parse(out[2]).violations[0].message,
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
  t.same(bad.err, [`${dir}/a.proto:4: Expected ";".`]);
  const help = capture();
  t.equal(await runLint(["-h"], help.io), 0);
  t.match(help.out.join("\n"), /inference-guard lint/);
});
