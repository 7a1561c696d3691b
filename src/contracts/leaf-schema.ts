// One-field message types for checking a single value against its field's own protovalidate rules
// (Contract.checkLeaf). Validating the value inside a message of its parent type would evaluate
// every other field's rules and the message-level CEL on a mostly empty message, then discard
// those violations: ~10 µs per value for demo.v1.TicketTriage. So, once per parent type, a
// synthetic file is built with one message per field, each holding a copy of that field's
// descriptor (its type, JSON name, presence and rule options, which carry the
// buf.validate.field extension): validating a value there evaluates that field's rules only
// (~1 µs). Fields whose rules depend on their parent (a message-level oneof rule naming them
// changes their default `ignore`), map and group fields, and editions files (features may come
// from enclosing messages) get no synthetic type: the caller validates them in the parent type.
import {
  clone,
  create,
  createFileRegistry,
  type DescField,
  type DescFile,
  type DescMessage,
  getOption,
} from "@bufbuild/protobuf";
import {
  DescriptorProtoSchema,
  FieldDescriptorProto_Type,
  FieldDescriptorProtoSchema,
  FileDescriptorProtoSchema,
  OneofDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { message as messageRulesExt } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

const schemas = new WeakMap<DescMessage, ReadonlyMap<DescField, DescMessage>>();

/** The one-field message type holding a copy of `field` of `parent`; undefined: use `parent`. */
export function leafSchema(parent: DescMessage, field: DescField): DescMessage | undefined {
  let byField = schemas.get(parent);
  if (byField === undefined) {
    byField = buildSchemas(parent);
    schemas.set(parent, byField);
  }
  return byField.get(field);
}

function buildSchemas(parent: DescMessage): ReadonlyMap<DescField, DescMessage> {
  const byField = new Map<DescField, DescMessage>();
  const file = parent.file;
  if (file.proto.syntax === "editions") return byField;
  const inMessageOneofRule = new Set(getOption(parent, messageRulesExt).oneof.flatMap((rule) => rule.fields));
  const fields = parent.fields.filter(
    (field) =>
      field.fieldKind !== "map" &&
      field.proto.type !== FieldDescriptorProto_Type.GROUP &&
      !inMessageOneofRule.has(field.name),
  );
  if (fields.length === 0) return byField;
  const files = new Map<string, DescFile>();
  collectFiles(file, files);
  const pkg = `inference_guard.leaf.${parent.typeName.replaceAll(".", "_")}`;
  const proto = create(FileDescriptorProtoSchema, {
    name: `inference-guard/leaf/${parent.typeName}.proto`,
    package: pkg,
    // Every file the parent's file sees: the field types and the rule extensions resolve there.
    dependency: [...files.keys()],
    syntax: file.proto.syntax,
    messageType: fields.map((field) => {
      const copy = clone(FieldDescriptorProtoSchema, field.proto);
      // Presence comes from the oneof: a real one, or the synthetic one of proto3 `optional`.
      const oneof = field.oneof?.name ?? (field.proto.proto3Optional ? `_${field.name}` : undefined);
      if (oneof !== undefined) copy.oneofIndex = 0;
      return create(DescriptorProtoSchema, {
        name: `F${field.number}`,
        field: [copy],
        oneofDecl: oneof === undefined ? [] : [create(OneofDescriptorProtoSchema, { name: oneof })],
      });
    }),
  });
  let registry: ReturnType<typeof createFileRegistry>;
  try {
    registry = createFileRegistry(proto, (name) => files.get(name));
  } catch {
    return byField;
  }
  for (const field of fields) {
    const schema = registry.getMessage(`${pkg}.F${field.number}`);
    if (schema !== undefined) byField.set(field, schema);
  }
  return byField;
}

function collectFiles(file: DescFile, into: Map<string, DescFile>): void {
  if (into.has(file.proto.name)) return;
  into.set(file.proto.name, file);
  for (const dependency of file.dependencies) collectFiles(dependency, into);
}
