// A problem in the user's contract sources, pointed at by file and line like a compiler does.
export interface ContractSourceError {
  /** Path of the .proto file as the user knows it (protoPaths entry joined with the file name). */
  readonly file: string;
  /** 1-based; absent when the problem is not tied to a line (file not found, protoc missing). */
  readonly line?: number;
  readonly message: string;
}

export function formatSourceError(error: ContractSourceError): string {
  return error.line === undefined ? `${error.file}: ${error.message}` : `${error.file}:${error.line}: ${error.message}`;
}
