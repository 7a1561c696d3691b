// grpc.health.v1 for the gRPC server in grpc.ts: Check (what Envoy's gRPC health checker calls),
// Watch and List. Messages are decoded with the service's own .proto, shipped by the
// grpc-health-check package.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as protoLoader from "@grpc/proto-loader";
import { GrpcStatus, type MethodHandler, type ServerCall } from "./grpc-call.js";

const require = createRequire(import.meta.url);
const SERVICE = "grpc.health.v1.Health";

type ServingStatus = "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

interface Codec {
  decode(bytes: Buffer): unknown;
  encode(message: unknown): Buffer;
}

/** grpc.health.v1's .proto, as the gRPC project ships it in grpc-health-check. */
export const HEALTH_PROTO = join(
  dirname(require.resolve("grpc-health-check/package.json")),
  "proto",
  "health",
  "v1",
  "health.proto",
);

function loadCodecs(): { check: Codec; watch: Codec; list: Codec } {
  const definition = protoLoader.loadSync(HEALTH_PROTO, { enums: String, defaults: true });
  const service = definition[SERVICE] as protoLoader.ServiceDefinition;
  const codec = (name: string): Codec => {
    const method = service[name];
    if (method === undefined) throw new Error(`${SERVICE} has no method ${name}`);
    return {
      decode: (bytes) => method.requestDeserialize(bytes),
      encode: (message) => method.responseSerialize(message as object),
    };
  };
  return { check: codec("Check"), watch: codec("Watch"), list: codec("List") };
}

function requestedService(codec: Codec, bytes: Buffer): string {
  const request = codec.decode(bytes) as { service?: unknown };
  return typeof request.service === "string" ? request.service : "";
}

/** Health of "" (the server as a whole) and of each named service; all flip together. */
export class HealthService {
  readonly #services: ReadonlySet<string>;
  readonly #watchers = new Set<{ service: string; call: ServerCall }>();
  readonly #codecs = loadCodecs();
  #serving = true;

  constructor(services: readonly string[]) {
    this.#services = new Set(["", ...services]);
  }

  setServing(serving: boolean): void {
    if (serving === this.#serving) return;
    this.#serving = serving;
    for (const watcher of this.#watchers)
      watcher.call.send(this.#codecs.watch.encode({ status: this.#statusOf(watcher.service) }));
  }

  /** Not serving, and Watch streams ended so a draining server has nothing of its own left open. */
  shutdown(): void {
    this.setServing(false);
    for (const watcher of this.#watchers) watcher.call.finish(GrpcStatus.UNAVAILABLE, "server shutting down");
    this.#watchers.clear();
  }

  methods(): Array<[string, MethodHandler]> {
    return [
      [`/${SERVICE}/Check`, (call) => this.#check(call)],
      [`/${SERVICE}/Watch`, (call) => this.#watch(call)],
      [`/${SERVICE}/List`, (call) => this.#list(call)],
    ];
  }

  #statusOf(service: string): ServingStatus {
    if (!this.#services.has(service)) return "SERVICE_UNKNOWN";
    return this.#serving ? "SERVING" : "NOT_SERVING";
  }

  #check(call: ServerCall): void {
    call.onMessage((bytes) => {
      const status = this.#statusOf(requestedService(this.#codecs.check, bytes));
      if (status === "SERVICE_UNKNOWN") {
        call.finish(GrpcStatus.NOT_FOUND, "unknown service");
        return;
      }
      call.send(this.#codecs.check.encode({ status }));
      call.finish(GrpcStatus.OK);
    });
    call.onHalfClose(() => call.finish(GrpcStatus.INTERNAL, "Check expects one request message"));
  }

  #watch(call: ServerCall): void {
    call.onMessage((bytes) => {
      const watcher = { service: requestedService(this.#codecs.watch, bytes), call };
      this.#watchers.add(watcher);
      call.onClose(() => this.#watchers.delete(watcher));
      call.send(this.#codecs.watch.encode({ status: this.#statusOf(watcher.service) }));
    });
  }

  #list(call: ServerCall): void {
    call.onMessage(() => {
      const statuses = Object.fromEntries(
        [...this.#services]
          .filter((service) => service !== "")
          .map((service) => [service, { status: this.#statusOf(service) }]),
      );
      call.send(this.#codecs.list.encode({ statuses }));
      call.finish(GrpcStatus.OK);
    });
  }
}
