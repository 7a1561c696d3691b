// The running guard's reload of what it can only apply at startup: it says so instead of pretending.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import t from "tap";
import { prepareGuard } from "../../../src/config/prepare.js";
import { startGuard } from "../../../src/server/serve.js";

t.test("a reload that changes limits warns that they apply on restart", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "guard-serve-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "guard.yaml");
  const config = (limits: string): string =>
    `listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }\ndrain: { graceMs: 0, timeoutMs: 100 }\nlimits: ${limits}\n`;
  await writeFile(file, config("{}"));
  const prepared = await prepareGuard(file);
  if (!prepared.ok) throw new Error(JSON.stringify(prepared.errors));
  const lines: string[] = [];
  const log = pino(
    { level: "warn" },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    }),
  );
  const guard = await startGuard(prepared, log, { configFile: file });
  t.teardown(() => guard.drain());
  t.same(await guard.reload(), { ok: true, warnings: [] }, "an unchanged reload");
  t.same(lines, [], "says nothing");
  await writeFile(file, config("{ maxStreamQueuedBytes: 1024 }"));
  t.same(await guard.reload(), { ok: true, warnings: [] });
  t.match(lines.join(""), /limits change only on restart/);
});
