// What kind of body a response announces, for the stages that choose at its headers how to see it.
import type { HeaderMap } from "./types.js";

/** text/event-stream (Server-Sent Events): a streamed answer, forwarded chunk by chunk as it comes. */
export function isEventStream(contentType: string | undefined): boolean {
  return contentType?.split(";")[0]?.trim().toLowerCase() === "text/event-stream";
}

export function isEventStreamResponse(headers: HeaderMap): boolean {
  return isEventStream(headers.get("content-type"));
}
