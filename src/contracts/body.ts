// Turns a buffered response body into text for the contract check: size limit on the body as
// received, decompression (gzip, deflate, br) with a limit on the decompressed size so a small
// bomb cannot exhaust memory, and UTF-8 decoding. Every failure is a reason, never an exception.
import { promisify } from "node:util";
import { brotliDecompress, gunzip, inflate, inflateRaw, type ZlibOptions } from "node:zlib";

export type BodyReason =
  | "body.too_large"
  | "body.decompression_limit"
  | "body.decode_error"
  | "body.unsupported_encoding";

export type DecodedBody =
  | { readonly ok: true; readonly text: string }
  | { readonly ok: false; readonly reason: BodyReason; readonly detail: string };

export interface BodyLimits {
  readonly maxBodyBytes: number;
  readonly maxDecompressedBytes: number;
}

const gunzipAsync = promisify<Buffer, ZlibOptions, Buffer>(gunzip);
const inflateAsync = promisify<Buffer, ZlibOptions, Buffer>(inflate);
const inflateRawAsync = promisify<Buffer, ZlibOptions, Buffer>(inflateRaw);
const brotliAsync = promisify<Buffer, ZlibOptions, Buffer>(brotliDecompress);

const utf8 = new TextDecoder("utf-8", { fatal: true });

async function decompress(encoding: string, input: Buffer, maxOutputLength: number): Promise<Buffer> {
  switch (encoding) {
    case "gzip":
    case "x-gzip":
      return gunzipAsync(input, { maxOutputLength });
    case "deflate":
      // RFC 9110 deflate is zlib-wrapped, but some servers send raw deflate: try both.
      return inflateAsync(input, { maxOutputLength }).catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") throw error;
        return inflateRawAsync(input, { maxOutputLength });
      });
    case "br":
      return brotliAsync(input, { maxOutputLength });
    default:
      throw Object.assign(new Error(`unsupported content-encoding "${encoding}"`), { code: "UNSUPPORTED" });
  }
}

/** `contentEncoding` is the raw header value (a list: "gzip" or "deflate, gzip" for stacked codings). */
export async function decodeBody(
  body: Uint8Array,
  contentEncoding: string | undefined,
  limits: BodyLimits,
): Promise<DecodedBody> {
  if (body.byteLength > limits.maxBodyBytes) {
    return { ok: false, reason: "body.too_large", detail: `${body.byteLength} bytes > ${limits.maxBodyBytes}` };
  }
  // Codings are listed in the order applied, so they are undone last to first.
  const codings = (contentEncoding ?? "")
    .split(",")
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== "" && coding !== "identity")
    .reverse();
  let bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  for (const coding of codings) {
    try {
      bytes = await decompress(coding, bytes, limits.maxDecompressedBytes);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ERR_BUFFER_TOO_LARGE") {
        return {
          ok: false,
          reason: "body.decompression_limit",
          detail: `${coding} body expands beyond ${limits.maxDecompressedBytes} bytes`,
        };
      }
      if (code === "UNSUPPORTED")
        return { ok: false, reason: "body.unsupported_encoding", detail: (error as Error).message };
      return { ok: false, reason: "body.decode_error", detail: `${coding}: ${(error as Error).message}` };
    }
  }
  try {
    return { ok: true, text: utf8.decode(bytes) };
  } catch {
    return { ok: false, reason: "body.decode_error", detail: "body is not valid UTF-8" };
  }
}
