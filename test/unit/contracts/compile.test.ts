import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { compileContracts, formatSourceError } from "../../../src/contracts/compile.js";
import { DEMO_PROTO } from "./fixtures.js";

type Teardown = { teardown: (fn: () => unknown) => void };

async function tempDir(t: Teardown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "contracts-test-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function compileSource(t: Teardown, files: Record<string, string>): Promise<string[]> {
  const dir = await tempDir(t);
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  const result = await compileContracts({ protoPaths: [dir] });
  return result.ok ? [] : result.errors.map((error) => formatSourceError(error).replace(`${dir}/`, ""));
}

const HEADER = 'syntax = "proto3";\npackage bad.v1;\nimport "buf/validate/validate.proto";\n';

t.test("the example contracts compile", async (t) => {
  const result = await compileContracts({ protoPaths: [DEMO_PROTO] });
  t.ok(result.ok);
  if (result.ok)
    t.same([...result.contracts.messages.keys()].sort(), [
      "demo.v1.DeliveryEta",
      "demo.v1.Embedding",
      "demo.v1.Sentiment",
      "demo.v1.TicketTriage",
    ]);
});

t.test("a missing directory is no contracts, not an error", async (t) => {
  const result = await compileContracts({ protoPaths: ["/nonexistent/contracts"] });
  t.ok(result.ok);
  if (result.ok) t.equal(result.contracts.messages.size, 0);
});

t.test("syntax errors come from buf as file:line", async (t) => {
  t.same(await compileSource(t, { "a.proto": `${HEADER}message A {\n  string x = 1\n}\n` }), [
    "a.proto:6: unexpected `}` after definition",
  ]);
});

t.test("an import that is in no root is reported at the import's line", async (t) => {
  t.same(await compileSource(t, { "a.proto": `${HEADER}import "nope/b.proto";\nmessage A {}\n` }), [
    'a.proto:4: imported file does not exist: import "nope/b.proto";',
  ]);
});

t.test("an option value of the wrong type is reported with the value", async (t) => {
  t.same(
    await compileSource(t, {
      "a.proto": `${HEADER}message A {\n  string x = 1 [(buf.validate.field).string.min_len = "x"];\n}\n`,
    }),
    ['a.proto:5: mismatched types: "x"'],
  );
});

t.test("files under every root compile together and import each other", async (t) => {
  const [first, second] = [await tempDir(t), await tempDir(t)];
  await writeFile(join(first, "a.proto"), `${HEADER}import "b.proto";\nmessage A { B b = 1; }\n`);
  await writeFile(
    join(second, "b.proto"),
    `${HEADER}message B {\n  string x = 1 [(buf.validate.field).string.nope = 1];\n}\n`,
  );
  const result = await compileContracts({ protoPaths: [first, second] });
  t.notOk(result.ok);
  if (!result.ok)
    t.same(result.errors.map(formatSourceError), [
      `${join(second, "b.proto")}:5: cannot find message field \`nope\` in \`buf.validate.StringRules\``,
    ]);
  await writeFile(join(second, "b.proto"), `${HEADER}message B { string x = 1; }\n`);
  const fixed = await compileContracts({ protoPaths: [first, second] });
  t.ok(fixed.ok);
  if (fixed.ok) t.same([...fixed.contracts.messages.keys()].sort(), ["bad.v1.A", "bad.v1.B"]);
});

t.test("a copy of validate.proto among the contracts is an error: the guard brings its own", async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, "buf/validate"), { recursive: true });
  await writeFile(join(dir, "buf/validate/validate.proto"), 'syntax = "proto2";\npackage buf.validate;\n');
  await writeFile(join(dir, "a.proto"), `${HEADER}message A {}\n`);
  const result = await compileContracts({ protoPaths: [dir] });
  t.notOk(result.ok);
  if (!result.ok)
    t.same(result.errors.map(formatSourceError), [
      `${join(dir, "buf/validate/validate.proto")}: the guard provides buf/validate/validate.proto (the version its validator reads): delete this copy`,
    ]);
});

t.test("a name in two roots is an error at the second, a root named twice is searched once", async (t) => {
  const [first, second] = [await tempDir(t), await tempDir(t)];
  for (const dir of [first, second]) await writeFile(join(dir, "a.proto"), `${HEADER}message A {}\n`);
  const result = await compileContracts({ protoPaths: [first, second] });
  t.notOk(result.ok);
  if (!result.ok)
    t.same(result.errors.map(formatSourceError), [
      `${join(second, "a.proto")}: a.proto is also under ${first}: a name must be unique across contracts.protoPaths`,
    ]);
  t.ok((await compileContracts({ protoPaths: [first, `${first}/`] })).ok);
});

t.test("an unknown option field is reported at its line", async (t) => {
  const errors = await compileSource(t, {
    "a.proto": `${HEADER}message A {\n  string x = 1 [(buf.validate.field).string.nope = 1];\n}\n`,
  });
  t.equal(errors.length, 1);
  t.match(errors[0], /^a\.proto:5: .*nope/);
});

t.test("a rule on the wrong field type stops at load with its line", async (t) => {
  t.same(
    await compileSource(t, {
      "a.proto": `${HEADER}message A {\n  double score = 1 [(buf.validate.field).string.min_len = 1];\n}\n`,
    }),
    ['a.proto:5: bad.v1.A: expected rule "double", got "string" on field bad.v1.A.score'],
  );
});

t.test("CEL syntax errors are all listed with their lines", async (t) => {
  const errors = await compileSource(t, {
    "a.proto": `${HEADER}message A {
  string x = 1 [(buf.validate.field).cel = {id: "a.syntax", expression: "this.size( >"}];
  option (buf.validate.message).cel = {id: "a.other", expression: "1 +"};
}
`,
  });
  t.equal(errors.length, 2, errors.join("\n"));
  t.match(errors[0], /^a\.proto:6: CEL rule "a\.other" does not compile: /);
  t.match(errors[1], /^a\.proto:5: CEL rule "a\.syntax" does not compile: /);
});

t.test("CEL that fails to evaluate stops at load, even in a message the first request would not set", async (t) => {
  const errors = await compileSource(t, {
    "a.proto": `${HEADER}message A {
  string x = 1;
  C nested = 2;
}
message C {
  option (buf.validate.message).cel = {id: "c.field", expression: "this.nope > 1"};
  int32 z = 1;
}
message D {
  repeated string w = 1 [(buf.validate.field).cel = {id: "d.overload", expression: "size(this, 2) > 0"}];
}
`,
  });
  t.equal(errors.length, 2, errors.join("\n"));
  t.match(errors[0], /^a\.proto:9: bad\.v1\.C: field not found: nope/, "reported once, at the rule");
  t.match(errors[1], /^a\.proto:13: bad\.v1\.D: .*no matching overload/);
});
