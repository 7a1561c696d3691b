// Fast prompt-token estimate without a vocabulary. BPE tokenizers (o200k_base, cl100k_base) cut
// text along script boundaries: an English word with its leading space is usually one token,
// digits go in groups of three, each CJK character is most of a token, and Cyrillic, Arabic or
// Indic words split into several pieces. Counting runs of each character class and charging a
// per-class rate lands within a few percent of the real count on mixed text (bench/complexity.ts
// measures it against gpt-tokenizer), at a fraction of a real tokenizer's cost.

enum CharClass {
  Latin = 0,
  Digit = 1,
  Space = 2,
  Newline = 3,
  Punct = 4,
  Cjk = 5,
  Hangul = 6,
  Cyrillic = 7,
  Abjad = 8,
  Indic = 9,
  Astral = 10,
  Other = 11,
}

/**
 * Tokens charged for a word run of each alphabetic class: `base` for the first piece plus one
 * token per `charsPerToken` letters beyond `freeChars` (long words split into sub-words).
 */
interface RunRate {
  readonly freeChars: number;
  readonly charsPerToken: number;
}

// Calibrated against o200k_base on test/fixtures/complexity/corpus (see bench/complexity.ts).
const LATIN: RunRate = { freeChars: 9, charsPerToken: 1.5 };
const CYRILLIC: RunRate = { freeChars: 4.5, charsPerToken: 3.7 };
const ABJAD: RunRate = { freeChars: 4, charsPerToken: 3.6 };
const INDIC: RunRate = { freeChars: 1.5, charsPerToken: 3.2 };
const TOKENS_PER_CJK_CHAR = 0.72;
const TOKENS_PER_HANGUL_CHAR = 0.7;
const TOKENS_PER_ASTRAL_CHAR = 2.5;
const TOKENS_PER_OTHER_CHAR = 0.8;
// Punctuation runs merge heavily (`"},{"`, `();`, `://`) in the vocabularies of both encodings.
const PUNCT_CHARS_PER_TOKEN = 4;
const DIGITS_PER_TOKEN = 2.4;
// A single space joins the next word; longer runs (indentation) and line breaks often merge
// with their neighbours, so a run costs less than a token on average.
const SPACE_RUN_TOKENS = 0.75;
const NEWLINE_RUN_TOKENS = 0.5;

const LOW_SURROGATE = 12;

function classify(code: number): number {
  if (code < 128) {
    if ((code >= 65 && code <= 90) || (code >= 97 && code <= 122)) return CharClass.Latin;
    if (code >= 48 && code <= 57) return CharClass.Digit;
    if (code === 32 || code === 9) return CharClass.Space;
    if (code === 10 || code === 13) return CharClass.Newline;
    return CharClass.Punct;
  }
  if (code <= 0x024f) return code >= 0xc0 && code !== 0xd7 && code !== 0xf7 ? CharClass.Latin : CharClass.Punct;
  if (code >= 0x0370 && code <= 0x052f) return CharClass.Cyrillic; // Greek and Cyrillic split alike
  if (code >= 0x0590 && code <= 0x08ff) return CharClass.Abjad; // Hebrew, Arabic, Syriac, Thaana
  if (code >= 0x0900 && code <= 0x0e7f) return CharClass.Indic; // Indic scripts and Thai
  if (code >= 0x2000 && code <= 0x2bff) return CharClass.Punct; // general punctuation, arrows, math
  if (code >= 0x2e80 && code <= 0x9fff) return CharClass.Cjk; // CJK, kana, CJK punctuation
  if (code >= 0xac00 && code <= 0xd7af) return CharClass.Hangul;
  if (code >= 0xd800 && code <= 0xdbff) return CharClass.Astral; // high surrogate: emoji, rare Han
  if (code >= 0xdc00 && code <= 0xdfff) return LOW_SURROGATE; // counted with its high surrogate
  if (code >= 0xf900 && code <= 0xfaff) return CharClass.Cjk;
  if (code >= 0xff00 && code <= 0xffef) return CharClass.Cjk; // full-width forms
  return CharClass.Other;
}

// One byte per UTF-16 code unit (64 KiB): the hot loop is a table lookup and a comparison.
const CLASS_OF = new Uint8Array(0x10000);
for (let code = 0; code < CLASS_OF.length; code++) CLASS_OF[code] = classify(code);

function wordTokens(rate: RunRate, length: number): number {
  return length <= rate.freeChars ? 1 : 1 + (length - rate.freeChars) / rate.charsPerToken;
}

/** Tokens of a run of `length` characters of one class. */
function runTokens(cls: number, length: number): number {
  switch (cls) {
    case CharClass.Latin:
      return wordTokens(LATIN, length);
    case CharClass.Cyrillic:
      return wordTokens(CYRILLIC, length);
    case CharClass.Abjad:
      return wordTokens(ABJAD, length);
    case CharClass.Indic:
      return wordTokens(INDIC, length);
    case CharClass.Digit:
      return Math.ceil(length / DIGITS_PER_TOKEN);
    case CharClass.Punct:
      return Math.ceil(length / PUNCT_CHARS_PER_TOKEN);
    case CharClass.Space:
      return length > 1 ? SPACE_RUN_TOKENS : 0;
    case CharClass.Newline:
      return NEWLINE_RUN_TOKENS;
    case CharClass.Cjk:
      return length * TOKENS_PER_CJK_CHAR;
    case CharClass.Hangul:
      return length * TOKENS_PER_HANGUL_CHAR;
    case CharClass.Astral:
      return length * TOKENS_PER_ASTRAL_CHAR;
    case CharClass.Other:
      return length * TOKENS_PER_OTHER_CHAR;
    default:
      return 0;
  }
}

/** Estimate for the characters [start, end) of text, as a fractional token count. */
function estimateRange(text: string, start: number, end: number): number {
  let tokens = 0;
  let runClass = -1;
  let runStart = start;
  for (let index = start; index < end; index++) {
    const cls = CLASS_OF[text.charCodeAt(index)] as number;
    if (cls === runClass) continue;
    tokens += runTokens(runClass, index - runStart);
    runClass = cls;
    runStart = index;
  }
  return tokens + runTokens(runClass, end - runStart);
}

/** Scan budget for one text when the caller sets none. */
export const FULL_SCAN_CHARS = 8192;
const SAMPLE_WINDOW_CHARS = 256;

/**
 * Estimated token count of `text`. Texts longer than `budgetChars` are estimated from evenly
 * spaced windows totalling about `budgetChars` characters and scaled by length: the cost per
 * text is bounded (a 100 KB prompt costs about the same as an 8 KB one) while the windows still
 * follow changes of language or content type along the text.
 */
export function estimateTextTokens(text: string, budgetChars = FULL_SCAN_CHARS): number {
  const length = text.length;
  if (length === 0) return 0;
  if (length <= budgetChars) return Math.max(1, Math.round(estimateRange(text, 0, length)));
  const windowChars = Math.min(SAMPLE_WINDOW_CHARS, budgetChars);
  const windows = Math.max(1, Math.floor(budgetChars / windowChars));
  const stride = Math.floor(length / windows);
  let sampled = 0;
  for (let window = 0; window < windows; window++) {
    const start = window * stride;
    sampled += estimateRange(text, start, start + windowChars);
  }
  return Math.max(1, Math.round((sampled * length) / (windows * windowChars)));
}
