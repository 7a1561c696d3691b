// Maps contract descriptors (a message, a field, one of their CEL rules) to the .proto line they
// were written on, through the SourceCodeInfo protoc recorded.
import type { DescField, DescFile, DescMessage } from "@bufbuild/protobuf";
import type { ContractSourceError } from "./source-error.js";

/** Same extension number for buf.validate.field / .message options. */
const VALIDATE_OPTION = 1159;
const FIELD_OPTIONS = 8;
const MESSAGE_OPTIONS = 7;
/** Field numbers of `cel` in buf.validate.MessageRules and FieldRules. */
const MESSAGE_RULES_CEL = 3;
const FIELD_RULES_CEL = 23;

export interface Locator {
  message(message: DescMessage, celIndex?: number): ContractSourceError;
  field(field: DescField, celIndex?: number): ContractSourceError;
}

/** Maps descriptors to source lines through the SourceCodeInfo protoc recorded. */
export function locator(file: DescFile, path: string): Locator {
  const locations = (file.proto.sourceCodeInfo?.location ?? []).map((location) => ({
    path: `${location.path.join(",")},`,
    line: (location.span[0] ?? 0) + 1,
  }));
  const messagePath = (message: DescMessage): number[] =>
    message.parent === undefined
      ? [4, file.proto.messageType.indexOf(message.proto)]
      : [...messagePath(message.parent), 3, message.parent.proto.nestedType.indexOf(message.proto)];
  // The most specific recorded location wins: the CEL rule itself, then the option, then the element.
  const at = (...prefixes: number[][]): ContractSourceError => {
    for (const prefix of prefixes) {
      const key = `${prefix.join(",")},`;
      let line: number | undefined;
      for (const location of locations) {
        if (location.path.startsWith(key) && (line === undefined || location.line < line)) line = location.line;
      }
      if (line !== undefined) return { file: path, line, message: "" };
    }
    return { file: path, message: "" };
  };
  const cel = (options: number[], celField: number, celIndex: number | undefined): number[][] =>
    celIndex === undefined ? [options] : [[...options, VALIDATE_OPTION, celField, celIndex], options];
  return {
    message: (message, celIndex) => {
      const base = messagePath(message);
      return at(...cel([...base, MESSAGE_OPTIONS], MESSAGE_RULES_CEL, celIndex), base);
    },
    field: (field, celIndex) => {
      const base = [...messagePath(field.parent), 2, field.parent.proto.field.indexOf(field.proto)];
      return at(...cel([...base, FIELD_OPTIONS], FIELD_RULES_CEL, celIndex), base);
    },
  };
}
