import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { compileContracts, formatSourceError } from "../../../src/contracts/compile.js";
import { DEMO_PROTO } from "./fixtures.js";

async function compileSource(
  t: { teardown: (fn: () => unknown) => void },
  files: Record<string, string>,
): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), "contracts-test-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
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

t.test("syntax errors come from protoc as file:line", async (t) => {
  t.same(await compileSource(t, { "a.proto": `${HEADER}message A {\n  string x = 1\n}\n` }), [
    'a.proto:6: Expected ";".',
  ]);
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

t.test("protoc missing is reported, not thrown", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "contracts-test-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, "a.proto"), `${HEADER}message A {}\n`);
  const result = await compileContracts({ protoPaths: [dir], protoc: "/nonexistent/protoc" });
  t.notOk(result.ok);
  if (!result.ok) t.match(result.errors[0]?.message, /protoc not found/);
});
