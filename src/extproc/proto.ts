// Loads Envoy's ext_proc service definition from the .proto files that @grpc/grpc-js-xds ships in
// deps/ (installed from the npm registry), so the repo carries no copy of Envoy's API.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const require = createRequire(import.meta.url);

function envoyApiIncludeDirs(): string[] {
  const root = join(dirname(require.resolve("@grpc/grpc-js-xds/package.json")), "deps");
  return ["envoy-api", "xds", "googleapis", "protoc-gen-validate"].map((dir) => join(root, dir));
}

let cached: grpc.ServiceDefinition | undefined;

/** The envoy.service.ext_proc.v3.ExternalProcessor service, decoded to plain JS objects. */
export function externalProcessorService(): grpc.ServiceDefinition {
  if (cached !== undefined) return cached;
  const definition = protoLoader.loadSync("envoy/service/ext_proc/v3/external_processor.proto", {
    includeDirs: envoyApiIncludeDirs(),
    // Field names stay camelCase, enums as their names and oneofs get a discriminator property:
    // the shapes src/extproc/wire.ts is written against.
    keepCase: false,
    enums: String,
    longs: Number,
    defaults: false,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    envoy: { service: { ext_proc: { v3: { ExternalProcessor: grpc.ServiceClientConstructor } } } };
  };
  cached = pkg.envoy.service.ext_proc.v3.ExternalProcessor.service;
  return cached;
}
