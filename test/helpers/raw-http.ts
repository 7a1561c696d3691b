// An HTTP/1.1 request with headers fetch will not send (Host, Origin, Sec-Fetch-*): for the admin
// port's checks of who is asking.
import { type IncomingHttpHeaders, request } from "node:http";

export interface RawReply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

export function rawHttp(
  url: string,
  method: string,
  path: string,
  headers: Readonly<Record<string, string>>,
): Promise<RawReply> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sent = request({ host: hostname, port, method, path, headers });
    sent.on("error", reject);
    sent.on("response", (response) => {
      let text = "";
      response.on("data", (chunk: Buffer) => {
        text += chunk.toString();
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, text }));
    });
    sent.end();
  });
}
