// An NDJSON streaming client for the end-to-end tests (Ollama's /api/chat): the request as given
// (Ollama streams unless told `"stream": false`), every line with its arrival time, on the SSE
// client's reading loop (sse-client.ts postRecords).
import { postRecords, type StreamedRecords } from "./sse-client.js";

export interface NdjsonLine {
  /** Ms after the request was sent. */
  readonly at: number;
  readonly text: string;
  /** The line parsed (every line of these streams is a JSON object). */
  readonly value: { readonly [member: string]: unknown };
}

/** Takes the complete lines off the front of what arrived; blank lines are none. */
function splitLines(buffered: string, at: number): { records: NdjsonLine[]; rest: string } {
  const end = buffered.lastIndexOf("\n");
  const records = buffered
    .slice(0, end + 1)
    .split("\n")
    .filter((text) => text.trim() !== "")
    .map((text) => ({ at, text, value: JSON.parse(text) as NdjsonLine["value"] }));
  return { records, rest: buffered.slice(end + 1) };
}

export function ndjsonPost(
  url: string,
  body: Record<string, unknown>,
  headers: Record<string, string>,
  abortAfterLines?: number,
): Promise<StreamedRecords<NdjsonLine>> {
  return postRecords(url, body, headers, splitLines, abortAfterLines);
}

/** The text an Ollama chat stream's lines add up to (message.content). */
export function ollamaContent(lines: readonly NdjsonLine[]): string {
  return lines.map(({ value }) => (value.message as { content?: string } | undefined)?.content ?? "").join("");
}
