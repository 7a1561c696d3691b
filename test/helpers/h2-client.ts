// An HTTP/2 (cleartext, prior knowledge) client for the end-to-end tests: what fetch cannot show,
// the trailers that end a response.
import { connect, type IncomingHttpHeaders } from "node:http2";

export interface H2Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** The trailers that ended the response; empty when it had none. */
  readonly trailers: IncomingHttpHeaders;
}

export async function h2Post(
  url: string,
  body: string,
  headers: Readonly<Record<string, string>>,
  timeoutMs = 30_000,
): Promise<H2Answer> {
  const target = new URL(url);
  const session = connect(target.origin);
  try {
    return await new Promise<H2Answer>((resolve, reject) => {
      session.once("error", reject);
      const request = session.request({
        ":method": "POST",
        ":path": `${target.pathname}${target.search}`,
        "content-type": "application/json",
        ...headers,
      });
      request.setTimeout(timeoutMs, () => request.close());
      let status = 0;
      let responseHeaders: IncomingHttpHeaders = {};
      let trailers: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      request.once("response", (received) => {
        responseHeaders = received;
        status = Number(received[":status"]);
      });
      request.once("trailers", (received) => {
        // Without node's own symbol keys (sensitiveHeaders): the trailers the peer sent, nothing else.
        trailers = Object.fromEntries(Object.entries(received));
      });
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.once("error", reject);
      request.once("close", () =>
        resolve({ status, headers: responseHeaders, body: Buffer.concat(chunks).toString("utf8"), trailers }),
      );
      request.end(body);
    });
  } finally {
    session.close();
  }
}
