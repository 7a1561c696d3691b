// Who a request is: the top-level `identity` section (where tenant and priority class come from) and
// the per-route `routes[].identity` (the route's default class, and whether its clients' own class
// header is believed). Derived once per exchange, before any stage runs (identify.ts); every stage
// reads the result from the Exchange. Only sources the operator trusts decide the class: what a
// client may claim is believed on routes that say so, nowhere else (docs/admission.md, threat model).
import { z } from "zod";
import { headerName, optionalHeaderName } from "../../config-kit/primitives.js";
import { PRIORITIES } from "./priority.js";

const priorityClass = z.enum(PRIORITIES);

/**
 * An ext_proc request attribute (Envoy's attribute path, e.g. source.principal): lower-case words
 * joined by dots. Envoy must list it in the filter's request_attributes to send it.
 */
const attributeName = z.string().regex(/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/, {
  message: "expected an Envoy attribute path such as source.principal",
});

const ruleSchema = z
  .strictObject({
    /** An ext_proc request attribute Envoy verified: source.principal, connection.uri_san_peer_certificate, source.address, xds.route_name, … */
    attribute: attributeName.optional(),
    /** Or a request header only Envoy sets (jwt_authn claim_to_headers, ext_authz): Envoy must strip client copies of it. */
    header: headerName.optional(),
    /** The value equals this… */
    exact: z.string().optional(),
    /** …or starts with this (e.g. a SPIFFE namespace "spiffe://cluster.local/ns/payments/"). */
    prefix: z.string().min(1).optional(),
    /** The class of a request the rule matches. */
    priority: priorityClass,
  })
  .superRefine((rule, ctx) => {
    if ((rule.attribute === undefined) === (rule.header === undefined))
      ctx.addIssue({ code: "custom", path: [], message: "set exactly one of attribute and header" });
    if ((rule.exact === undefined) === (rule.prefix === undefined))
      ctx.addIssue({ code: "custom", path: [], message: "set exactly one of exact and prefix" });
  });

export const identitySchema = z
  .strictObject({
    tenant: z
      .strictObject({
        /**
         * Request header naming the tenant (a credential such as authorization, or a header Envoy
         * sets): hashed, never kept raw; "" for none. Absent on a request → tenant "anonymous".
         */
        header: optionalHeaderName.default("authorization"),
        /** An ext_proc request attribute naming the tenant (e.g. source.principal); when present it wins over the header. */
        attribute: attributeName.optional(),
      })
      .prefault({}),
    priority: z
      .strictObject({
        /**
         * Header carrying a class name (critical | standard | sheddable): believed only on routes
         * with identity.trustClientPriority, ignored (and counted) elsewhere.
         */
        header: headerName.default("x-guard-priority"),
        /** Verified sources mapped to a class; the first rule that matches decides, before anything else. */
        rules: z.array(ruleSchema).max(256).default([]),
      })
      .prefault({}),
  })
  .prefault({});

export const routeIdentitySchema = z
  .strictObject({
    /** The route's class when no rule matched (and no trusted client header named one), e.g. sheddable for a batch route. */
    priority: priorityClass.default("standard"),
    /** Believe the class header the route's clients send: only for routes whose clients are trusted. */
    trustClientPriority: z.boolean().default(false),
  })
  .prefault({});

export type IdentityConfig = z.output<typeof identitySchema>;
export type PriorityRule = IdentityConfig["priority"]["rules"][number];
export type RouteIdentityConfig = z.output<typeof routeIdentitySchema>;
