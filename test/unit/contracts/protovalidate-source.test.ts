// gen/protovalidate/buf/validate/validate.proto is printed from the descriptor the validator
// embeds (tools/protovalidate); contracts are compiled against that source. Compiled back by buf,
// it must describe the same file: same messages and fields, the same extension numbers contracts
// annotate with, the same options (the predefined rules' CEL among them).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clone, create, createRegistry, equals, getExtension, setExtension } from "@bufbuild/protobuf";
import { type FileDescriptorProto, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  file_buf_validate_validate,
  predefined,
  RuleSchema,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import t from "tap";
import { describeSources } from "../../../src/contracts/buf.js";

t.test("the printed validate.proto compiles back to the embedded descriptor", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "protovalidate-source-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, "a.proto"), 'syntax = "proto3";\nimport "buf/validate/validate.proto";\n');
  const described = await describeSources([{ root: dir, name: "a.proto" }]);
  if (!described.ok) return t.fail(JSON.stringify(described.errors));
  const compiled = described.set.file.find((file) => file.name === "buf/validate/validate.proto");
  if (compiled === undefined) return t.fail("validate.proto among the imports");
  const built = clone(FileDescriptorProtoSchema, compiled);
  built.sourceCodeInfo = undefined;
  const embedded = file_buf_validate_validate.proto;
  t.same(
    built.extension.map((extension) => [extension.extendee, extension.name, extension.number]),
    embedded.extension.map((extension) => [extension.extendee, extension.name, extension.number]),
    "extension numbers",
  );
  const registry = createRegistry(file_buf_validate_validate);
  const same = (a: FileDescriptorProto) =>
    equals(FileDescriptorProtoSchema, a, embedded, { registry, extensions: true });
  t.ok(same(built), "the whole descriptor, rules in options included");
  // The comparison sees a rule's CEL: the printed source must not lose one unnoticed.
  const changed = clone(FileDescriptorProtoSchema, built);
  const field = changed.messageType.find((message) => message.name === "StringRules")?.field[0];
  if (field?.options === undefined) return t.fail("StringRules.const has options");
  const rules = getExtension(field.options, predefined);
  rules.cel = [create(RuleSchema, { id: "changed", expression: "true" })];
  setExtension(field.options, predefined, rules);
  t.notOk(same(changed), "a changed predefined rule is a difference");
});
