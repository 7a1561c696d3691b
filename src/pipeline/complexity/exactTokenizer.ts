// The optional exact token count (gpt-tokenizer: pure JS, ~50× faster than js-tiktoken on 2 KB of
// text in our measurement, and ~5× faster to load). It is imported only when a route asks for it,
// so the vocabulary (several MB) stays out of memory otherwise. Until it is loaded, or if it
// cannot be, counts come from the fast estimate.
import type { Logger } from "pino";
import type { ComplexityConfig } from "./config.js";
import type { CountTokens } from "./openai.js";
import { estimateTextTokens } from "./tokens.js";

type Encoding = ComplexityConfig["tokenizer"]["encoding"];

// Special-token text in a prompt ("<|endoftext|>") is counted as plain text instead of throwing:
// a client must not be able to fail the estimate with a string.
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

export async function loadExactCounter(encoding: Encoding): Promise<CountTokens> {
  const tokenizer =
    encoding === "o200k_base"
      ? await import("gpt-tokenizer/encoding/o200k_base")
      : await import("gpt-tokenizer/encoding/cl100k_base");
  return (text) => tokenizer.countTokens(text, PLAIN_TEXT);
}

export interface TokenCounter {
  readonly count: CountTokens;
  /** Settles once the exact tokenizer is in use (or failed to load); immediate in fast mode. */
  readonly ready: Promise<void>;
}

export function createTokenCounter(settings: ComplexityConfig["tokenizer"], log: Logger): TokenCounter {
  if (settings.mode === "fast") return { count: estimateTextTokens, ready: Promise.resolve() };
  let exact: CountTokens | undefined;
  const ready = loadExactCounter(settings.encoding).then(
    (counter) => {
      exact = counter;
    },
    (error: unknown) => {
      log.warn({ err: error, encoding: settings.encoding }, "exact tokenizer unavailable; using the fast estimate");
    },
  );
  const count: CountTokens = (text, budgetChars) =>
    exact !== undefined && text.length <= Math.min(settings.exactMaxChars, budgetChars)
      ? exact(text, budgetChars)
      : estimateTextTokens(text, budgetChars);
  return { count, ready };
}
