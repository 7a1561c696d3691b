import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { runCheck } from "../../../src/commands/check.js";
import { TASKS } from "../../../src/demo/outputs.js";
import { DEMO_PROTO } from "../contracts/fixtures.js";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (line: string) => out.push(line), err: (line: string) => err.push(line) }, out, err };
}

const sentiment = TASKS.sentiment;
if (sentiment === undefined) throw new Error("the demo has no sentiment task");

/** A recording of `count` answers of a sentiment version to distinct texts. */
async function recording(dir: string, name: string, count: number, answer: (input: { text: string }) => unknown) {
  const file = join(dir, `${name}.jsonl`);
  const lines = Array.from({ length: count }, (_, index) =>
    JSON.stringify(answer({ text: `${name} review ${index}` })),
  );
  await writeFile(file, `${lines.join("\n")}\n`);
  return file;
}

t.test("check --baseline: the drift monitor's verdict on two recorded versions, offline", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "check-drift-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const v1 = await recording(dir, "v1", 400, (input) => sentiment.conforming(input));
  const v1Again = await recording(dir, "v1-again", 400, (input) => sentiment.conforming(input));
  const collapsed = await recording(dir, "v2", 400, (input) => sentiment.drifts?.score_collapsed?.(input));
  const few = await recording(dir, "few", 20, (input) => sentiment.drifts?.score_collapsed?.(input));
  const args = (candidate: string, ...extra: string[]) => [
    "--proto",
    DEMO_PROTO,
    "--message",
    "demo.v1.Sentiment",
    "--baseline",
    v1,
    ...extra,
    candidate,
  ];

  const drifted = capture();
  t.equal(await runCheck(args(collapsed), drifted.io), 1, "a collapsed version fails the release check");
  t.match(drifted.out.join("\n"), /DRIFT score \(numeric\): .*variance_ratio=[0-9.e-]+!/);
  t.match(drifted.out.at(-1), /^verdict: drift in score/);

  const stable = capture();
  t.equal(await runCheck(args(v1Again), stable.io), 0, "the same version on other inputs is stable");
  t.equal(stable.out.at(-1), "verdict: stable");

  const json = capture();
  t.equal(await runCheck(args(collapsed, "--format", "json"), json.io), 1);
  const report = JSON.parse(json.out.join("")) as {
    verdict: string;
    fields: Array<{ field: string; drifting: string[] }>;
  };
  t.equal(report.verdict, "model_drift");
  t.ok(report.fields.find((field) => field.field === "score")?.drifting.includes("variance_ratio"));

  const small = capture();
  t.equal(await runCheck(args(few), small.io), 2, "20 answers: no verdict, and no false 'stable'");
  t.match(small.err.join("\n"), /too few payloads to judge drift \(need 200/);
  t.equal(await runCheck(args(few, "--min-samples", "10"), capture().io), 1, "--min-samples lowers the bar");

  const missing = capture();
  t.equal(await runCheck(args(join(dir, "absent.jsonl")), missing.io), 2);
  t.match(missing.err.join("\n"), /cannot read .*absent\.jsonl/);
});
