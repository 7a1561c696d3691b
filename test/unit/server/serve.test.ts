// The running guard's reload of what it can only apply at startup: it says so instead of pretending.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import t from "tap";
import { prepareGuard } from "../../../src/config/prepare.js";
import { ComponentLogs } from "../../../src/log.js";
import { startGuard } from "../../../src/server/serve.js";

t.test("a reload that changes limits warns that they apply on restart", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "guard-serve-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "guard.yaml");
  const config = (limits: string): string =>
    `listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }\ndrain: { graceMs: 0, timeoutMs: 100 }\nlog: { level: warn }\nlimits: ${limits}\n`;
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
  const guard = await startGuard(prepared, new ComponentLogs(log), { configFile: file });
  t.teardown(() => guard.drain());
  t.same(await guard.reload(), { ok: true, warnings: [] }, "an unchanged reload");
  t.same(lines, [], "says nothing");
  await writeFile(file, config("{ maxStreamQueuedBytes: 1024 }"));
  t.same(await guard.reload(), { ok: true, warnings: [] });
  t.match(lines.join(""), /limits change only on restart/);
});

t.test("a reload applies log.components: the reload's own lines get louder", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "guard-serve-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "guard.yaml");
  const config = (log: string): string =>
    `listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }\ndrain: { graceMs: 0, timeoutMs: 100 }\nlog: ${log}\n`;
  await writeFile(file, config("{ level: warn }"));
  const prepared = await prepareGuard(file);
  if (!prepared.ok) throw new Error(JSON.stringify(prepared.errors));
  const lines: { component?: string; msg: string }[] = [];
  const root = pino(
    { level: "warn" },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()));
        done();
      },
    }),
  );
  const logs = new ComponentLogs(root, prepared.config.log);
  const guard = await startGuard(prepared, logs, { configFile: file });
  t.teardown(() => guard.drain());
  await guard.reload();
  t.same(lines, [], "at warn the reload says nothing");
  await writeFile(file, config("{ level: warn, components: { reload: info, grpc: debug } }"));
  await guard.reload();
  t.match(lines, [{ component: "reload", msg: "configuration reloaded" }]);
  t.equal(logs.of("grpc").level, "debug");
  t.equal(logs.of("pipeline").level, "warn", "an unnamed component stays at log.level");
  await writeFile(file, config("{ level: error }"));
  await guard.reload();
  t.equal(lines.length, 1, "a component dropped from the file goes back to log.level");
  t.equal(logs.of("reload").level, "error");
});
