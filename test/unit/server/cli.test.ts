import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { main } from "../../../src/cli.js";
import { VERSION } from "../../../src/version.js";

function capture(): { out: string[]; err: string[]; io: { out: (s: string) => void; err: (s: string) => void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (s) => out.push(s), err: (s) => err.push(s) } };
}

t.test("help and version", async (t) => {
  const c = capture();
  t.equal(await main(["--help"], c.io), 0);
  t.match(c.out.join(""), /Commands:[\s\S]*serve[\s\S]*version/);
  const v = capture();
  t.equal(await main(["version"], v.io), 0);
  t.equal(v.out.join(""), `${VERSION}\n`);
  const s = capture();
  t.equal(await main(["serve", "--help"], s.io), 0);
  t.match(s.out.join(""), /--config/);
});

t.test("usage errors exit 2", async (t) => {
  const c = capture();
  t.equal(await main(["frobnicate"], c.io), 2);
  t.match(c.err.join(""), /unknown command "frobnicate"/);
  const d = capture();
  t.equal(await main(["serve", "--nope"], d.io), 2);
  t.equal(await main([], capture().io), 2, "no command is a usage error");
});

t.test("a bad config exits 2 listing every problem with its path", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "guard-cli-"));
  const file = join(dir, "bad.yaml");
  await writeFile(
    file,
    "routes:\n  - name: ok\n    match: { pathPrefix: nope }\n  - name: ok\nlisten: { admin: '0.0.0.0:1' }\n",
  );
  const c = capture();
  t.equal(await main(["serve", "--config", file], c.io), 2);
  const text = c.err.join("");
  t.match(text, /routes\[0\]\.match\.pathPrefix/);
  t.match(text, /routes\[1\]\.name: duplicate route name/);
  t.match(text, /listen\.admin: "0\.0\.0\.0:1" is not a loopback address/);
});

t.test("config warnings are shown by serve (with the errors) and by lint", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "guard-cli-"));
  const file = join(dir, "warned.yaml");
  await writeFile(
    file,
    "routes:\n  - name: predict\n    match: { pathPrefix: /v1/predict/ }\n" +
      "  - name: sentiment\n    match: { pathPrefix: /v1/predict/sentiment }\nadmision: {}\n",
  );
  const serve = capture();
  t.equal(await main(["serve", "--config", file], serve.io), 2);
  const served = serve.err.join("");
  t.match(
    served,
    /routes\[1\]\.match: routes\[1\] "sentiment" \(pathPrefix "\/v1\/predict\/sentiment"\) can never match/,
  );
  t.match(served, /warning: admision: unknown section, ignored/);
  const lint = capture();
  t.equal(await main(["lint", "--config", file], lint.io), 2, "an invalid config is a config error");
  t.match(lint.err.join(""), /warned\.yaml: warning: admision: unknown section, ignored/);
});
