// Features of KServe v2 / Triton inference requests (JSON form, and the binary-tensor extension
// whose JSON header is followed by raw tensor bytes). Cost follows the input tensors' size:
// elements (product of the shape) × the datatype's width. The shape is read, never the data, so a
// request's cost does not depend on whether it sent data inline or as binary.
import { emptyFeatures, type Features } from "./features.js";
import { isObject, stringBytes } from "./openai.js";

const DATATYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1,
  UINT8: 1,
  INT8: 1,
  UINT16: 2,
  INT16: 2,
  FP16: 2,
  BF16: 2,
  UINT32: 4,
  INT32: 4,
  FP32: 4,
  UINT64: 8,
  INT64: 8,
  FP64: 8,
};
/** BYTES elements carry a 4-byte length prefix each in Triton's wire format. */
const BYTES_ELEMENT_OVERHEAD = 4;
/** Keeps absurd shapes (a client claiming 10^30 elements) finite and comparable. */
const MAX_ELEMENTS = 1e12;

function elementCount(shape: unknown): number | undefined {
  if (!Array.isArray(shape)) return undefined;
  let elements = 1;
  for (const dimension of shape) {
    if (typeof dimension !== "number" || !Number.isInteger(dimension) || dimension < 0) return undefined;
    elements = Math.min(elements * dimension, MAX_ELEMENTS);
  }
  return elements;
}

function tensorBytes(tensor: unknown): number | undefined {
  if (!isObject(tensor) || typeof tensor.datatype !== "string") return undefined;
  const elements = elementCount(tensor.shape);
  if (elements === undefined) return undefined;
  if (tensor.datatype === "BYTES") {
    const binarySize = isObject(tensor.parameters) ? tensor.parameters.binary_data_size : undefined;
    if (typeof binarySize === "number" && Number.isFinite(binarySize) && binarySize >= 0) return binarySize;
    return stringBytes(tensor.data) + elements * BYTES_ELEMENT_OVERHEAD;
  }
  const width = DATATYPE_BYTES[tensor.datatype];
  return width === undefined ? undefined : elements * width;
}

export function extractKserve(body: Record<string, unknown>): Features | undefined {
  const { inputs } = body;
  if (!Array.isArray(inputs) || inputs.length === 0) return undefined;
  let total = 0;
  for (const input of inputs) {
    const bytes = tensorBytes(input);
    if (bytes === undefined) return undefined;
    total += bytes;
  }
  return { ...emptyFeatures("kserve"), tensorBytes: total };
}
