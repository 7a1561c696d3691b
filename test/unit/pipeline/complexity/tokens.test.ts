import { countTokens } from "gpt-tokenizer/encoding/o200k_base";
import t from "tap";
import { estimateTextTokens, FULL_SCAN_CHARS } from "../../../../src/pipeline/complexity/tokens.js";
import { corpus } from "./fixtures.js";

const PLAIN = { disallowedSpecial: new Set<string>() };

t.test("each corpus text is estimated within 15% of o200k_base", async (t) => {
  for (const { name, text } of corpus()) {
    const exact = countTokens(text, PLAIN);
    const estimate = estimateTextTokens(text);
    t.ok(Math.abs(estimate - exact) / exact <= 0.15, `${name}: estimate ${estimate} vs exact ${exact}`);
  }
});

// The documented bound (README, bench/complexity.ts): mean absolute error ≤ 10 % against o200k_base.
// The calibration corpus cannot show it alone; the held-out texts were written after calibration.
t.test("held-out texts: mean absolute error within 10%, each text within 15%", async (t) => {
  const errors = corpus("heldout").map(({ name, text }) => {
    const exact = countTokens(text, PLAIN);
    const estimate = estimateTextTokens(text);
    const error = Math.abs(estimate - exact) / exact;
    t.ok(error <= 0.15, `${name}: estimate ${estimate} vs exact ${exact}`);
    return error;
  });
  t.equal(errors.length, 5, "every held-out text");
  const mean = errors.reduce((sum, error) => sum + error, 0) / errors.length;
  t.ok(mean <= 0.1, `mean absolute error ${(mean * 100).toFixed(1)}%`);
});

t.test("CJK text costs far more tokens per character than English", async (t) => {
  const texts = new Map(corpus().map(({ name, text }) => [name, text]));
  const zh = texts.get("zh.txt") ?? "";
  const en = texts.get("en-prose.txt") ?? "";
  t.ok(estimateTextTokens(zh) / zh.length > 3 * (estimateTextTokens(en) / en.length));
});

t.test("long texts are sampled and stay close to a full scan", async (t) => {
  const mixed = corpus()
    .map(({ text }) => text)
    .join("\n");
  const long = mixed.repeat(Math.ceil((10 * FULL_SCAN_CHARS) / mixed.length));
  t.ok(long.length > FULL_SCAN_CHARS);
  const exact = countTokens(long, PLAIN);
  const estimate = estimateTextTokens(long);
  t.ok(Math.abs(estimate - exact) / exact <= 0.1, `sampled estimate ${estimate} vs exact ${exact}`);
});

t.test("edge cases", async (t) => {
  t.equal(estimateTextTokens(""), 0);
  t.equal(estimateTextTokens("a"), 1);
  t.ok(estimateTextTokens("\ud83d") >= 1, "a lone surrogate still counts and never throws");
  t.ok(estimateTextTokens(" ".repeat(1000)) < 10, "a run of spaces is cheap");
  t.ok(estimateTextTokens("123456789") >= 3 && estimateTextTokens("123456789") <= 4, "digits go in small groups");
});
