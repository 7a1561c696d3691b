// Writes to stdout the FileDescriptorSet of buf/validate/validate.proto and the well-known types it
// imports, from the descriptors @bufbuild/protovalidate and @bufbuild/protobuf embed: the exact
// version the guard's validator reads. tools/protovalidate prints it as .proto source for the buf
// compiler (`make build`, the Dockerfile's protovalidate stage).
import { create, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

const files = [];
const seen = new Set();
// Dependencies first, the order a FileDescriptorSet is read in.
const add = (file) => {
  if (seen.has(file.proto.name)) return;
  seen.add(file.proto.name);
  for (const dependency of file.dependencies) add(dependency);
  files.push(file.proto);
};
add(file_buf_validate_validate);
process.stdout.write(toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: files })));
