// Serves the status page on the admin port: static HTML, JS and CSS from assets/ (plain files, no
// build step, nothing loaded from elsewhere) and the JSON they poll.
import { readFile } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type AdminHandler, sendJson } from "../admin.js";
import type { StatusReporter } from "./report.js";

/** Beside this module: the build copies them from src/ into dist/ (Makefile build, the Dockerfile). */
export const STATUS_ASSETS_DIR = fileURLToPath(new URL("./assets/", import.meta.url));

const ASSETS = [
  { path: "/", file: "index.html", type: "text/html; charset=utf-8" },
  { path: "/status.js", file: "status.js", type: "text/javascript; charset=utf-8" },
  { path: "/status.css", file: "status.css", type: "text/css; charset=utf-8" },
] as const;

const PAGE_HEADERS = {
  "cache-control": "no-store",
  // Only the guard's own files and /api/status: no outside assets, no inline script.
  "content-security-policy": "default-src 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
};

/** Reads the assets once (a missing file is a packaging error and fails startup). */
export async function statusPageRoutes(
  reporter: StatusReporter,
  assetsDir = STATUS_ASSETS_DIR,
): Promise<Map<string, AdminHandler>> {
  const routes = new Map<string, AdminHandler>();
  for (const asset of ASSETS) {
    const content = await readFile(join(assetsDir, asset.file));
    routes.set(`GET ${asset.path}`, (_request, response) => send(response, asset.type, content));
  }
  routes.set("GET /api/status", async (_request, response) => sendJson(response, 200, await reporter.report()));
  return routes;
}

function send(response: ServerResponse, type: string, content: Buffer): void {
  response.writeHead(200, { "content-type": type, "content-length": content.byteLength, ...PAGE_HEADERS });
  response.end(content);
}
