import { readFile } from "node:fs/promises";
import t from "tap";
import { ANSWERS } from "../../../src/pipeline/answer-catalogue.js";
import { ANSWERS_DOC, renderAnswersDoc } from "../../../src/pipeline/answers-doc.js";

t.test("docs/answers.md is what the catalogue renders (regenerate with `make docs`)", async (t) => {
  const committed = await readFile(ANSWERS_DOC, "utf8");
  t.equal(committed, renderAnswersDoc());
});

t.test("the doc has a row for every code", async (t) => {
  const doc = renderAnswersDoc();
  for (const code of Object.keys(ANSWERS)) t.match(doc, `\n| \`${code}\` |`, code);
});
