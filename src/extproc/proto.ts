// Envoy's ext_proc messages, decoded from the .proto files `make` prints from go-control-plane
// (tools/envoy-api: Envoy's generated API of the release the guard is tested with, from the Go module
// proxy), so the repo carries no copy of Envoy's API and knows every field of that release.
import { fileURLToPath } from "node:url";
import * as protoLoader from "@grpc/proto-loader";
import type { ProcessingRequest, ProcessingResponse } from "./wire.js";

/** Written by `make` (target gen/envoy-api); the image copies it beside dist/. */
export const ENVOY_API_DIR = fileURLToPath(new URL("../../../gen/envoy-api", import.meta.url));

export type Decoded =
  | { readonly ok: true; readonly frame: ProcessingRequest }
  | { readonly ok: false; readonly error: unknown };

export interface ExternalProcessorCodec {
  decode(bytes: Buffer): Decoded;
  encode(frame: ProcessingResponse): Buffer;
}

let cachedDefinition: protoLoader.ServiceDefinition | undefined;

/** envoy.service.ext_proc.v3.ExternalProcessor as proto-loader describes it (also what a grpc-js client takes). */
export function externalProcessorService(): protoLoader.ServiceDefinition {
  if (cachedDefinition !== undefined) return cachedDefinition;
  const definition = protoLoader.loadSync("envoy/service/ext_proc/v3/external_processor.proto", {
    includeDirs: [ENVOY_API_DIR],
    // Field names stay camelCase, enums as their names and oneofs get a discriminator property:
    // the shapes src/extproc/wire.ts is written against.
    keepCase: false,
    enums: String,
    longs: Number,
    defaults: false,
    oneofs: true,
  });
  cachedDefinition = definition["envoy.service.ext_proc.v3.ExternalProcessor"] as protoLoader.ServiceDefinition;
  return cachedDefinition;
}

/** The Process method's message codec: frames as the plain objects wire.ts describes. */
export function externalProcessorCodec(): ExternalProcessorCodec {
  const process = externalProcessorService().Process;
  if (process === undefined) throw new Error("ext_proc service definition has no Process method");
  return {
    decode(bytes) {
      try {
        return { ok: true, frame: process.requestDeserialize(bytes) as ProcessingRequest };
      } catch (error) {
        return { ok: false, error };
      }
    },
    encode: (frame) => process.responseSerialize(frame),
  };
}
