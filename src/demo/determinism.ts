// Everything the demo model "decides" is a pure function of its input or of a seed, so cache
// tests can expect identical answers for identical prompts and error-rate runs repeat exactly.
import { createHash } from "node:crypto";

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** The usual rule of thumb for English with BPE tokenizers: about four characters a token. */
export function estimateTokens(text: string): number {
  return tokensForChars(text.length);
}

function tokensForChars(chars: number): number {
  return Math.ceil(chars / 4);
}

const VOCABULARY = [
  "the",
  "model",
  "answers",
  "with",
  "a",
  "steady",
  "reply",
  "about",
  "your",
  "request",
  "and",
  "notes",
  "that",
  "latency",
  "depends",
  "on",
  "load",
  "while",
  "outputs",
  "stay",
  "within",
  "their",
  "contract",
  "so",
  "callers",
  "can",
  "rely",
  "each",
  "field",
  "keeps",
  "its",
  "meaning",
];

/** A reply that depends only on the prompt and choice index, at most `maxTokens` long (min one word). */
export function replyText(prompt: string, choiceIndex: number, maxTokens: number): string {
  const digest = createHash("sha256").update(`${choiceIndex}\u0000${prompt}`).digest();
  const words: string[] = [];
  // Counts the closing period too, so the finished text stays within maxTokens.
  let length = 1;
  for (let i = 0; ; i++) {
    const word = VOCABULARY[(digest[i % digest.length] ?? 0) % VOCABULARY.length] ?? "reply";
    const grown = length + (words.length === 0 ? 0 : 1) + word.length;
    if (words.length > 0 && tokensForChars(grown) > maxTokens) break;
    words.push(word);
    length = grown;
  }
  const text = words.join(" ");
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

const FALLBACK_EMBEDDING_DIMENSIONS = 8;

/** A unit-length vector derived from the text, for tasks the output catalogue does not cover. */
export function textVector(text: string): number[] {
  const digest = createHash("sha256").update(text).digest();
  const raw = Array.from({ length: FALLBACK_EMBEDDING_DIMENSIONS }, (_, i) => {
    const word = digest.readUInt16BE(i * 2);
    return word / 32767.5 - 1;
  });
  const norm = Math.hypot(...raw);
  // A digest whose 8 words all sit at the midpoint cannot be normalised; any fixed unit vector will do.
  if (norm === 0) return raw.map((_, i) => (i === 0 ? 1 : 0));
  return raw.map((value) => value / norm);
}
