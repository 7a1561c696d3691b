// Server-Sent Events the guard writes itself: its in-stream error event and a cached stream's
// replay. Each data line becomes one `data:` line (a reader joins them back with "\n"), and a
// blank line ends the event.

const encoder = new TextEncoder();

/**
 * One event: `event: <name>` when given, then one `data: ` line per line of `data` (split at
 * "\r\n", "\n" or "\r"), then the blank line. A line break in the event name would end the field
 * early and is a caller bug: RangeError.
 */
export function sseEvent(data: string, event?: string): Uint8Array {
  let text = "";
  if (event !== undefined) {
    if (/[\r\n]/.test(event)) throw new RangeError(`an SSE event name has no line break: ${JSON.stringify(event)}`);
    text = `event: ${event}\n`;
  }
  for (const line of data.split(/\r\n|\r|\n/)) text += `data: ${line}\n`;
  return encoder.encode(`${text}\n`);
}

/** `data: [DONE]\n\n`, the end of an OpenAI stream. Shared: never modify it. */
export const SSE_DONE: Uint8Array = sseEvent("[DONE]");
