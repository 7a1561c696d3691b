import t from "tap";
import { demoResponseBody, renderOutput, TASKS } from "../../../src/demo/outputs.js";
import { sentimentRequest } from "../../../src/demo/traffic.js";
import { demoContract } from "../contracts/fixtures.js";

const INPUTS = Array.from({ length: 200 }, (_, i) => sentimentRequest(i, "steady"));

t.test("every drift variant's answers conform to the task's contract", async (t) => {
  for (const [task, outputs] of Object.entries(TASKS)) {
    const contract = await demoContract(task);
    for (const name of Object.keys(outputs.drifts)) {
      const failing = INPUTS.map((input) => demoResponseBody(task, renderOutput(task, name, input) ?? null)).filter(
        (body) => !contract.checkValue(body).valid,
      );
      t.equal(failing.length, 0, `${task}/${name}: all 200 answers conform`);
    }
  }
});

t.test("the drift variants move their answers in range", async (t) => {
  const scores = (variant: string) =>
    INPUTS.map((input) => (renderOutput("sentiment", variant, input) as { score: number }).score);
  t.ok(new Set(scores("v1")).size > 20, "v1 scores spread");
  t.same([...new Set(scores("score_collapsed"))].sort(), [0.02, 0.98], "collapsed to two values");
  const neutral = INPUTS.filter(
    (input) => (renderOutput("sentiment", "label_shift", input) as { label: string }).label === "NEUTRAL",
  ).length;
  t.ok(neutral > 90 && neutral < 150, `about six in ten NEUTRAL: ${neutral}`);
  const summary = (variant: string) =>
    (renderOutput("chat_structured", variant, { text: "my invoice was charged twice" }) as { summary: string }).summary
      .length;
  t.equal(summary("longer_summaries"), summary("v1") * 3 + 2, "three summaries joined");
  const etas = (variant: string) =>
    INPUTS.map((input) => (renderOutput("eta", variant, input) as { eta_minutes: number }).eta_minutes);
  const later = etas("eta_later");
  t.ok(
    etas("v1").every((minutes, index) => later[index] === minutes + 15),
    "every ETA 15 minutes later than v1's for the same request",
  );
});

t.test("input-shift traffic is longer and mostly complaints; steady traffic one complaint in five", async (t) => {
  const negative = (mode: "steady" | "input_shift") =>
    Array.from({ length: 100 }, (_, i) => sentimentRequest(i, mode)).filter(
      (input) => (renderOutput("sentiment", "v1", input) as { label: string }).label === "NEGATIVE",
    ).length;
  t.equal(negative("steady"), 20);
  t.equal(negative("input_shift"), 100);
  const length = (mode: "steady" | "input_shift") => JSON.stringify(sentimentRequest(7, mode)).length;
  t.ok(length("input_shift") > 5 * length("steady"), "five times longer at least");
});
