// The ext_proc gRPC server plus grpc.health.v1 on the same port, which Envoy's health check of the
// guard cluster uses. Binds loopback TCP or a Unix socket with an explicit file mode.
import { chmod, rm } from "node:fs/promises";
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { externalProcessorService } from "../extproc/proto.js";
import { processHandler } from "../extproc/service.js";
import type { StreamDeps } from "../extproc/stream.js";

export const EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor";

export interface GrpcServer {
  /** The bound address: "host:port" with the real port, or "unix:/path". */
  readonly address: string;
  readonly activeStreams: () => number;
  setServing(serving: boolean): void;
  /** Stops accepting new streams, waits for open ones up to timeoutMs, then cuts the rest. */
  drain(timeoutMs: number): Promise<{ forced: boolean }>;
}

export async function startGrpcServer(address: string, socketMode: string, deps: StreamDeps): Promise<GrpcServer> {
  const server = new grpc.Server({
    // Buffered bodies travel in one message; Envoy's own buffer limit is the real bound.
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    "grpc.max_send_message_length": 64 * 1024 * 1024,
  });
  let open = 0;
  server.addService(externalProcessorService(), {
    process: processHandler(deps, { onOpen: () => open++, onClose: () => open-- }),
  });
  const health = new HealthImplementation({ "": "SERVING", [EXT_PROC_SERVICE]: "SERVING" });
  health.addToServer(server);

  const isUnix = address.startsWith("unix:");
  const socketPath = address.slice("unix:".length);
  // A stale socket file from a crashed run would make bind fail.
  if (isUnix) await rm(socketPath, { force: true });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, boundPort) => (error ? reject(error) : resolve(boundPort)));
  });
  if (isUnix) await chmod(socketPath, Number.parseInt(socketMode, 8));
  const bound = isUnix ? address : `${address.slice(0, address.lastIndexOf(":"))}:${port}`;

  return {
    address: bound,
    activeStreams: () => open,
    setServing(serving) {
      const status = serving ? "SERVING" : "NOT_SERVING";
      health.setStatus("", status);
      health.setStatus(EXT_PROC_SERVICE, status);
    },
    drain(timeoutMs) {
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve({ forced: true });
        }, timeoutMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve({ forced: false });
        });
      });
    },
  };
}
