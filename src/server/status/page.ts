// Serves the status page on the admin port: the page itself, rendered with the current status
// (render.ts) into assets/index.html, so its first paint needs no script; the part that script
// swaps in on each update; the JS and CSS from assets/ (plain files, no build step, nothing loaded
// from elsewhere); and the JSON report.
import { readFile } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type AdminHandler, sendJson } from "../admin.js";
import { renderStatus } from "./render.js";
import type { StatusReporter } from "./report.js";

/** Beside this module: the build copies them from src/ into dist/ (Makefile build, the Dockerfile). */
export const STATUS_ASSETS_DIR = fileURLToPath(new URL("./assets/", import.meta.url));

/** Where index.html takes the rendered status. */
const STATUS_SLOT = "<!--status-->";

const STATIC_ASSETS = [
  { path: "/status.js", file: "status.js", type: "text/javascript; charset=utf-8" },
  { path: "/status.css", file: "status.css", type: "text/css; charset=utf-8" },
] as const;
const HTML = "text/html; charset=utf-8";

const PAGE_HEADERS = {
  "cache-control": "no-store",
  // Only the guard's own files and /api/status: no outside assets, no inline script.
  "content-security-policy": "default-src 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
};

/** Reads the assets once (a missing file, or a page without its slot, is a packaging error and fails startup). */
export async function statusPageRoutes(
  reporter: Pick<StatusReporter, "report">,
  assetsDir = STATUS_ASSETS_DIR,
): Promise<Map<string, AdminHandler>> {
  const routes = new Map<string, AdminHandler>();
  for (const asset of STATIC_ASSETS) {
    const content = await readFile(join(assetsDir, asset.file));
    routes.set(`GET ${asset.path}`, (_request, response) => send(response, asset.type, content));
  }
  const page = await readFile(join(assetsDir, "index.html"), "utf8");
  const [head, tail, ...extra] = page.split(STATUS_SLOT);
  if (tail === undefined || extra.length > 0)
    throw new Error(`${join(assetsDir, "index.html")}: needs exactly one ${STATUS_SLOT}`);
  const live = async (): Promise<string> => renderStatus(await reporter.report());
  routes.set("GET /", async (_request, response) => send(response, HTML, Buffer.from(head + (await live()) + tail)));
  routes.set("GET /status/live", async (_request, response) => send(response, HTML, Buffer.from(await live())));
  routes.set("GET /api/status", async (_request, response) => sendJson(response, 200, await reporter.report()));
  return routes;
}

function send(response: ServerResponse, type: string, content: Buffer): void {
  response.writeHead(200, { "content-type": type, "content-length": content.byteLength, ...PAGE_HEADERS });
  response.end(content);
}
