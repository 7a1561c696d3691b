// What each break of the demo output catalogue (src/demo/outputs.ts) must trip: a rule id and the
// JSON path it is reported at (relative to the response body). The unit catalogue test and the
// end-to-end contract test both hold the guard to this one table.

export interface ExpectedViolation {
  readonly rule: string;
  /** Exact path, or a pattern where the offending index depends on the input. */
  readonly field: string | RegExp;
}

const CONTENT = "choices[0].message.content<json>";

export const EXPECTED_BREAKS: Readonly<Record<string, Readonly<Record<string, ExpectedViolation>>>> = {
  sentiment: {
    score_rescaled: { rule: "double.gte_lte", field: "score" },
    label_respelled: { rule: "string.in", field: "label" },
    new_label: { rule: "string.in", field: "label" },
    label_renamed: { rule: "json.unknown_field", field: "sentiment" },
    score_as_string: { rule: "json.number_string", field: "score" },
    score_null: { rule: "json.null", field: "score" },
    score_nan: { rule: "json.non_finite", field: "score" },
    wrapped_in_object: { rule: "json.unknown_field", field: "result" },
    extra_field: { rule: "json.unknown_field", field: "explanation" },
    missing_score: { rule: "required", field: "score" },
    empty_label: { rule: "string.in", field: "label" },
    negative_score: { rule: "double.gte_lte", field: "score" },
    label_contradicts_score: { rule: "sentiment.label_matches_score", field: "$" },
  },
  eta: {
    stale_timestamp: { rule: "eta.fresh", field: "computed_at" },
    future_timestamp: { rule: "eta.fresh", field: "computed_at" },
    eta_in_seconds: { rule: "int32.gte_lte", field: "eta_minutes" },
    eta_renamed: { rule: "json.unknown_field", field: "eta_mins" },
    new_status: { rule: "json.unknown_enum_value", field: "status" },
    timestamp_as_epoch: { rule: "json.wrong_type", field: "computed_at" },
    fractional_minutes: { rule: "json.wrong_type", field: "eta_minutes" },
    delayed_without_reason: { rule: "eta.delay_needs_reason", field: "$" },
    empty_order_id: { rule: "string.min_len", field: "order_id" },
    status_as_number: { rule: "json.enum_number", field: "status" },
  },
  embedding: {
    dimension_changed: { rule: "repeated.max_items", field: "data[0].embedding" },
    dimension_shrunk: { rule: "repeated.min_items", field: "data[0].embedding" },
    nan_component: { rule: "json.non_finite", field: "data[0].embedding[3]" },
    null_component: { rule: "json.null", field: "data[0].embedding[0]" },
    unnormalised: { rule: "float.gte_lte", field: /^data\[0\]\.embedding\[[0-7]\]$/ },
    wrapped_in_object: { rule: "json.wrong_type", field: "data[0].embedding" },
    base64_encoded: { rule: "json.wrong_type", field: "data[0].embedding" },
  },
  chat_structured: {
    key_renamed: { rule: "json.unknown_field", field: `${CONTENT}.urgency` },
    tags_too_long: { rule: "repeated.max_items", field: `${CONTENT}.tags` },
    prose_not_json: { rule: "json.syntax", field: CONTENT },
    category_respelled: { rule: "string.in", field: `${CONTENT}.category` },
    priority_as_string: { rule: "json.number_string", field: `${CONTENT}.priority` },
    empty_summary: { rule: "string.min_len", field: `${CONTENT}.summary` },
    urgent_without_human: { rule: "triage.urgent_needs_human", field: CONTENT },
    priority_infinity: { rule: "json.non_finite", field: `${CONTENT}.priority` },
  },
};

/** Whether some reported violation is the expected one. */
export function includesExpected(
  violations: readonly { readonly field: string; readonly rule: string }[],
  expected: ExpectedViolation,
): boolean {
  return violations.some(
    (violation) =>
      violation.rule === expected.rule &&
      (typeof expected.field === "string" ? violation.field === expected.field : expected.field.test(violation.field)),
  );
}
