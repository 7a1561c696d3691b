// Configuration of output contracts: the global `contracts` section (where the .proto files are,
// limits) and the per-route `routes[].contract` binding (which message, where the payload is,
// what to do on a violation).
import { z } from "zod";
import type { ConfigIssue } from "../config-kit/issues.js";
import { headerName, optionalHeaderName, removedKey } from "../config-kit/primitives.js";
import { parsePayloadPath } from "./payload.js";

const fullName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/, {
  message: 'expected a fully-qualified protobuf message name such as "demo.v1.Sentiment"',
});

const payloadPath = z.string().superRefine((value, ctx) => {
  const parsed = parsePayloadPath(value);
  if (!parsed.ok) ctx.addIssue({ code: "custom", message: parsed.error });
});

export const contractsSectionSchema = z
  .strictObject({
    /**
     * Directories searched (recursively) for contract .proto files; also the import path. A file
     * name (relative to its directory) must be unique across them.
     */
    protoPaths: z.array(z.string().min(1)).default(["proto/contracts"]),
    /** Contracts compile with the buf compiler the guard installs (@bufbuild/buf), not a system protoc. */
    protoc: removedKey(
      "contracts compile with the buf compiler installed with the guard (@bufbuild/buf); delete this key",
    ),
    /** Violations collected per response; the rest are counted in the problem body only. */
    maxViolations: z.number().int().min(1).max(1000).default(20),
    /** Payloads checked per response (array items, chat choices); more is a violation. */
    maxPayloads: z.number().int().min(1).max(100_000).default(1024),
    /** Bodies larger than this (as received) are not parsed: outcome "unverifiable", reason body.too_large. */
    maxBodyBytes: z
      .number()
      .int()
      .min(1)
      .default(4 * 1024 * 1024),
    /** Decompressed size limit for gzip/deflate/br bodies; beyond it: reason body.decompression_limit. */
    maxDecompressedBytes: z
      .number()
      .int()
      .min(1)
      .default(16 * 1024 * 1024),
    /** Distinct model versions kept as metric labels; later ones are "other". */
    maxModelVersions: z.number().int().min(1).max(1000).default(20),
    /** Distinct normalised field paths kept as metric labels per contract; later ones are "other". */
    maxFieldLabels: z.number().int().min(1).max(10_000).default(200),
    /** Response header carrying the verdict ("passed" / "violated; rules=..."); "" disables it. */
    header: optionalHeaderName.default("x-guard-contract"),
    /** Upper bound of that header's value; the rule list is cut at a rule boundary with ",...". */
    headerMaxLength: z.number().int().min(32).max(4096).default(256),
  })
  .prefault({});

export const routeContractSchema = z.strictObject({
  /** Fully-qualified name of the contract message, e.g. "demo.v1.Sentiment". */
  message: fullName,
  /**
   * Where the payload is in the response body: "$" (whole body), a path with [*] for "each item"
   * and a trailing <json> for "JSON inside this string", e.g. "choices[*].message.content<json>".
   */
  payload: payloadPath.default("$"),
  /**
   * When each payload is not a JSON object (an embedding's number array), it is checked as the
   * value of this field of the contract message.
   */
  wrapField: z
    .string()
    .regex(/^[a-z_][a-z0-9_]*$/i)
    .optional(),
  /** enforce: a violating body never reaches the client (a 502 guard answer); shadow: pass + header. */
  action: z.enum(["enforce", "shadow"]).default("shadow"),
  /**
   * Streamed answers (text/event-stream): "incremental" checks each value as it completes and,
   * under enforce, holds back only what is not yet known to conform, cutting the stream before a
   * violating value; "buffer" holds the whole stream and answers like a non-streamed response
   * (for consumers that must never see a partial answer); "observe" forwards everything at once
   * and only counts, whatever the action.
   */
  stream: z.enum(["incremental", "buffer", "observe"]).default("incremental"),
  /** Status of the reply that replaces a violating response under enforce. */
  status: z.number().int().min(400).max(599).default(502),
  /** Share of responses checked, decided per request at request headers (0..1). */
  sampleRate: z.number().min(0).max(1).default(1),
  /** Response header carrying the model version. */
  modelVersionHeader: headerName.default("x-model-version"),
  /** Body field (simple path like "model" or "meta.version") used when the header is absent. */
  modelVersionField: z
    .string()
    .regex(/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/)
    .optional(),
  /**
   * Only check responses of these models (response body's "model", else the request's); exact
   * names or prefixes ending in "*". Empty: every model.
   */
  models: z.array(z.string().min(1)).default([]),
  /**
   * What happens to a body that cannot be checked (too large, decompression limit, unsupported
   * encoding): "reject" answers like a violation, "pass" lets it through with a header.
   * Default: reject under enforce, pass under shadow.
   */
  unverifiable: z.enum(["reject", "pass"]).optional(),
  /** Strictness knobs: each relaxes one of the JSON checks that are on by default. */
  allowUnknownFields: z.boolean().default(false),
  allowNumberStrings: z.boolean().default(false),
  allowNonFiniteStrings: z.boolean().default(false),
  allowNull: z.boolean().default(false),
  allowEnumNumbers: z.boolean().default(false),
});

export type ContractsSection = z.output<typeof contractsSectionSchema>;
export type RouteContract = z.output<typeof routeContractSchema>;

/** What the cross-check needs to know about the compiled contracts. */
export interface ContractCatalogue {
  /** Returns the names of a message's fields, or undefined when no such message was compiled. */
  fieldsOf(message: string): readonly string[] | undefined;
}

interface ConfigWithContracts {
  readonly routes: readonly { readonly contract?: RouteContract | undefined }[];
}

/**
 * Checks that need the compiled contracts: the bound message exists and wrapField is one of
 * its fields. Paths point at the offending key, e.g. "routes[2].contract.message".
 */
export function crossCheckContracts(config: ConfigWithContracts, catalogue: ContractCatalogue): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  config.routes.forEach((route, index) => {
    const contract = route.contract;
    if (contract === undefined) return;
    const fields = catalogue.fieldsOf(contract.message);
    if (fields === undefined) {
      issues.push({
        path: `routes[${index}].contract.message`,
        message: `unknown contract message "${contract.message}"`,
      });
      return;
    }
    if (contract.wrapField !== undefined && !fields.includes(contract.wrapField)) {
      issues.push({
        path: `routes[${index}].contract.wrapField`,
        message: `"${contract.message}" has no field "${contract.wrapField}" (fields: ${fields.join(", ")})`,
      });
    }
  });
  return issues;
}
