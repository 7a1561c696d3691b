// Admin HTTP: /metrics, /healthz (process alive), /readyz (accepting traffic). Loopback by default.
// Capabilities mount more endpoints through `routes`.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, type Registry } from "prom-client";
import { parseAddress } from "../util/address.js";
import type { AdminAccess } from "./admin-access.js";

export type AdminHandler = (request: IncomingMessage, response: ServerResponse, url: URL) => void | Promise<void>;

export interface AdminServer {
  readonly url: string;
  close(): Promise<void>;
}

export interface AdminOptions {
  readonly registry: () => Registry;
  readonly ready: () => boolean;
  /** Extra endpoints keyed by "METHOD /path". */
  readonly routes?: ReadonlyMap<string, AdminHandler>;
  /** Decides every request before it reaches an endpoint (admin-access.ts). */
  readonly access: AdminAccess;
}

export function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  response.end(text);
}

export async function startAdminServer(address: string, options: AdminOptions): Promise<AdminServer> {
  const refusals = new Counter({
    name: "guard_admin_refusals_total",
    help: "Admin requests refused before any endpoint, by reason: admin.host_not_allowed, admin.cross_origin, admin.token_not_configured, admin.token_missing, admin.token_invalid.",
    labelNames: ["reason"],
    registers: [options.registry()],
  });
  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const refusal = await options.access(request);
    if (refusal !== undefined) {
      refusals.inc({ reason: refusal.reason });
      const challenge: Record<string, string> = refusal.status === 401 ? { "www-authenticate": "Bearer" } : {};
      return sendJson(
        response,
        refusal.status,
        { error: refusal.reason, message: refusal.message },
        { "x-guard-reason": refusal.reason, ...challenge },
      );
    }
    const url = new URL(request.url ?? "/", "http://admin.local");
    const key = `${request.method ?? "GET"} ${url.pathname}`;
    if (key === "GET /metrics") {
      const registry = options.registry();
      const text = await registry.metrics();
      response.writeHead(200, { "content-type": registry.contentType });
      response.end(text);
      return;
    }
    if (key === "GET /healthz") return sendJson(response, 200, { status: "ok" });
    if (key === "GET /readyz") {
      const ready = options.ready();
      return sendJson(response, ready ? 200 : 503, { status: ready ? "ready" : "draining" });
    }
    const route = options.routes?.get(key);
    if (route !== undefined) return route(request, response, url);
    sendJson(response, 404, { error: "not_found", path: url.pathname });
  };
  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent)
        sendJson(response, 500, { error: "internal", message: error instanceof Error ? error.message : String(error) });
      else response.destroy();
    });
  });
  await listen(server, address);
  const bound = server.address();
  const url = typeof bound === "string" ? `unix:${bound}` : `http://${hostOf(bound)}:${bound?.port ?? 0}`;
  return {
    url,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function hostOf(address: AddressInfo | null): string {
  if (address === null) return "127.0.0.1";
  return address.family === "IPv6" ? `[${address.address}]` : address.address;
}

function listen(server: Server, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    const done = (): void => {
      server.off("error", reject);
      resolve();
    };
    const target = parseAddress(address);
    if ("path" in target) server.listen(target.path, done);
    else server.listen(target.port, target.host, done);
  });
}
