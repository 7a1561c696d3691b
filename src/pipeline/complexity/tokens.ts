// Fast prompt-token estimate without a vocabulary. BPE tokenizers (o200k_base, cl100k_base) cut
// text along script boundaries: an English word with its leading space is usually one token,
// digits go in groups of three, each CJK character is most of a token, and Cyrillic, Arabic or
// Indic words split into several pieces. Counting runs of each character class and charging a
// per-class rate lands within a few percent of the real count on mixed text (bench/complexity.ts
// measures it against gpt-tokenizer), at a fraction of a real tokenizer's cost.

const enum CharClass {
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

const ASCII_CLASS = new Uint8Array(128);
for (let code = 0; code < 128; code++) {
  let cls: CharClass;
  if ((code >= 65 && code <= 90) || (code >= 97 && code <= 122)) cls = CharClass.Latin;
  else if (code >= 48 && code <= 57) cls = CharClass.Digit;
  else if (code === 32 || code === 9) cls = CharClass.Space;
  else if (code === 10 || code === 13) cls = CharClass.Newline;
  else cls = CharClass.Punct;
  ASCII_CLASS[code] = cls;
}

function classify(code: number): CharClass {
  if (code < 128) return ASCII_CLASS[code] as CharClass;
  if (code <= 0x024f) return code >= 0xc0 && code !== 0xd7 && code !== 0xf7 ? CharClass.Latin : CharClass.Punct;
  if (code >= 0x0370 && code <= 0x052f) return CharClass.Cyrillic; // Greek and Cyrillic split alike
  if (code >= 0x0590 && code <= 0x08ff) return CharClass.Abjad; // Hebrew, Arabic, Syriac, Thaana
  if (code >= 0x0900 && code <= 0x0dff) return CharClass.Indic;
  if (code >= 0x0e00 && code <= 0x0e7f) return CharClass.Indic; // Thai behaves like Indic scripts
  if (code >= 0x2000 && code <= 0x2bff) return CharClass.Punct; // general punctuation, arrows, math
  if (code >= 0x2e80 && code <= 0x9fff) return CharClass.Cjk; // CJK, kana, CJK punctuation
  if (code >= 0xac00 && code <= 0xd7af) return CharClass.Hangul;
  if (code >= 0xd800 && code <= 0xdbff) return CharClass.Astral; // high surrogate: emoji, rare Han
  if (code >= 0xdc00 && code <= 0xdfff) return CharClass.Space; // low surrogate: counted with its pair
  if (code >= 0xf900 && code <= 0xfaff) return CharClass.Cjk;
  if (code >= 0xff00 && code <= 0xffef) return CharClass.Cjk; // full-width forms
  return CharClass.Other;
}

function runTokens(rate: RunRate, length: number): number {
  return length <= rate.freeChars ? 1 : 1 + (length - rate.freeChars) / rate.charsPerToken;
}

/** Estimate for the characters [start, end) of text, as a fractional token count. */
function estimateRange(text: string, start: number, end: number): number {
  let tokens = 0;
  let runClass = -1;
  let runLength = 0;
  const closeRun = (): void => {
    switch (runClass) {
      case CharClass.Latin:
        tokens += runTokens(LATIN, runLength);
        break;
      case CharClass.Cyrillic:
        tokens += runTokens(CYRILLIC, runLength);
        break;
      case CharClass.Abjad:
        tokens += runTokens(ABJAD, runLength);
        break;
      case CharClass.Indic:
        tokens += runTokens(INDIC, runLength);
        break;
      case CharClass.Digit:
        tokens += Math.ceil(runLength / DIGITS_PER_TOKEN);
        break;
      case CharClass.Punct:
        tokens += Math.ceil(runLength / PUNCT_CHARS_PER_TOKEN);
        break;
      case CharClass.Space:
        if (runLength > 1) tokens += SPACE_RUN_TOKENS;
        break;
      case CharClass.Newline:
        tokens += NEWLINE_RUN_TOKENS;
        break;
      default:
        break;
    }
  };
  for (let index = start; index < end; index++) {
    const cls = classify(text.charCodeAt(index));
    switch (cls) {
      case CharClass.Cjk:
        tokens += TOKENS_PER_CJK_CHAR;
        break;
      case CharClass.Hangul:
        tokens += TOKENS_PER_HANGUL_CHAR;
        break;
      case CharClass.Astral:
        tokens += TOKENS_PER_ASTRAL_CHAR;
        break;
      case CharClass.Other:
        tokens += TOKENS_PER_OTHER_CHAR;
        break;
      default:
        if (cls === runClass) {
          runLength++;
          continue;
        }
        closeRun();
        runClass = cls;
        runLength = 1;
        continue;
    }
    // Per-character classes end any run in progress.
    closeRun();
    runClass = -1;
    runLength = 0;
  }
  closeRun();
  return tokens;
}

/** Texts up to this length are scanned in full; longer ones are sampled. */
export const FULL_SCAN_CHARS = 8192;
const SAMPLE_WINDOWS = 16;
const SAMPLE_WINDOW_CHARS = 384;

/**
 * Estimated token count of `text`. Long texts are estimated from evenly spaced windows and
 * scaled by length, which keeps the cost per string bounded (a 100 KB prompt costs the same as
 * a 6 KB one) while following changes of language or content type along the text.
 */
export function estimateTextTokens(text: string): number {
  const length = text.length;
  if (length === 0) return 0;
  if (length <= FULL_SCAN_CHARS) return Math.max(1, Math.round(estimateRange(text, 0, length)));
  const stride = Math.floor(length / SAMPLE_WINDOWS);
  let sampled = 0;
  for (let window = 0; window < SAMPLE_WINDOWS; window++) {
    const start = window * stride;
    sampled += estimateRange(text, start, start + SAMPLE_WINDOW_CHARS);
  }
  return Math.round((sampled * length) / (SAMPLE_WINDOWS * SAMPLE_WINDOW_CHARS));
}
