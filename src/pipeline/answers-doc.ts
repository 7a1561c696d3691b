// docs/answers.md, rendered from the answers catalogue so the doc cannot drift from what the guard
// sends: the table, and example bodies built by the same code the stages call. Run as a script
// (`make docs`), it writes the file; test/unit/pipeline/answers-doc.test.ts fails when the
// committed file differs from this rendering.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { shedReply } from "./admission/reply.js";
import { ANSWERS, type AnswerCode, type AnswerSpec } from "./answer-catalogue.js";
import { answerFormatFor, PROBLEM_CONTENT_TYPE } from "./answers.js";
import { violatedAnswer } from "./contracts/answer.js";
import type { Reply } from "./types.js";

export const ANSWERS_DOC = fileURLToPath(new URL("../../../docs/answers.md", import.meta.url));

function cell(text: string): string {
  return text.replace(/\|/g, "\\|");
}

function row(code: AnswerCode, spec: AnswerSpec): string {
  if (spec.kind === "replay")
    return `| \`${code}\` | the stored response's | no | — | — | ${spec.title} | — | ${cell(spec.description)} |`;
  const status = spec.statusSetting === undefined ? `${spec.status}` : `${spec.status} (\`${spec.statusSetting}\`)`;
  const members = spec.members.map((member) => `\`${member}\``).join(", ");
  return `| \`${code}\` | ${status} | ${spec.retryAfter ? "yes" : "no"} | \`${spec.openAiType}\` | ${spec.title} | ${members} | ${cell(spec.description)} |`;
}

function example(reply: Reply): string {
  const headers = Object.entries({ ...reply.headers, "x-guard-reason": reply.reason })
    .map(([name, value]) => `${name}: ${value}`)
    .join("\n");
  const body = JSON.stringify(JSON.parse(String(reply.body)), null, 2);
  return `\`\`\`http\nHTTP/1.1 ${reply.status}\n${headers}\n\n${body}\n\`\`\``;
}

export function renderAnswersDoc(): string {
  const shed = shedReply(
    { reason: "shed.queue_full", retryAfterMs: 1_500 },
    "sheddable",
    answerFormatFor("/v1/chat/completions"),
  );
  const violated = violatedAnswer({
    format: answerFormatFor("/v1/predict/sentiment"),
    status: ANSWERS["contract.violated"].status,
    route: "sentiment",
    contract: "demo.v1.Sentiment",
    modelVersion: "v2",
    headers: { "x-guard-contract": "violated; rules=double.gte_lte" },
    violations: [
      {
        field: "score",
        rule: "double.gte_lte",
        message: "must be greater than or equal to 0 and less than or equal to 1",
      },
    ],
    total: 1,
  });
  const rows = Object.entries(ANSWERS).map(([code, spec]) => row(code as AnswerCode, spec));
  return `<!-- Generated from src/pipeline/answer-catalogue.ts by \`make docs\`; edit the table there, not this file. -->
# Answers the guard gives itself

Whenever the guard answers a request instead of the upstream (a shed, a maintenance window, a
withheld response, a cache hit), the answer carries:

- a **status** from the table below (the three with a setting named in the table can be set per route; the OpenAI \`type\` then follows the status: 429 \`rate_limit_error\`, other 4xx \`invalid_request_error\`, 5xx \`server_error\`);
- the header **\`x-guard-reason: <code>\`**, the same code that labels \`guard_replies_total{reason}\`
  and appears as \`code\` in the body. Codes are stable: alerts, dashboards and clients match on them;
- **\`retry-after-ms\`** and **\`Retry-After\`** where the table says so: the same wait in
  milliseconds (the OpenAI SDKs read it first) and rounded up to whole seconds (every other
  client); and \`cache-control: no-store\` on every error answer (it describes this moment only);
- **\`x-should-retry: false\`** where asking again would get the same answer (the table's
  x-should-retry column): the OpenAI SDKs retry 5xx answers twice by default, and honour this header
  instead, so a deterministic contract break is not generated three times for one call;
- a JSON body in one of two shapes, chosen per request by its path:
  - **OpenAI-compatible endpoints** — a path ending in \`/chat/completions\`, \`/completions\`,
    \`/embeddings\` or \`/responses\` (the OpenAI APIs the complexity stage reads, whatever prefix the
    route matches): \`content-type: application/json\` and
    \`{"error": {"message", "type", "code", "param": null, …}}\`, the object the official OpenAI SDKs
    parse. \`message\` is \`<title>: <detail>\`: the Node SDK's error message is
    \`<status> <message>\`, the Python SDK's \`Error code: <status> - <body>\`. Both expose the object
    (Node \`err.error\`, Python \`err.body\`) and its \`code\` and \`type\` as attributes, and pick
    the exception class by status (429 → \`RateLimitError\`, 5xx → \`InternalServerError\`).
  - **everything else** — RFC 9457 \`${PROBLEM_CONTENT_TYPE}\` with \`type\`
    (\`urn:inference-guard:problem:<code, dots and underscores as hyphens>\`), \`title\`, \`status\`,
    \`detail\` and the reason \`code\` as an extension member.

  The request path decides, not the route: one route may span several APIs (\`pathPrefix: /v1/\`),
  and a client of a non-OpenAI API on it must get the shape its code expects.

Each code's own members (the "members" column) sit beside those: in the problem object, or inside
the OpenAI \`error\` object. A contract violation's rule ids, fields and messages are in
\`violations\`, and the first three are spelled out in the detail, so an SDK's error message names
them.

| code | status | Retry-After | x-should-retry | OpenAI \`error.type\` | title | members | when |
| --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join("\n")}

## Examples

A shed on an OpenAI-compatible endpoint (\`POST /v1/chat/completions\`):

${example(shed)}

An enforced contract violation elsewhere (\`POST /v1/predict/sentiment\`):

${example(violated)}
`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(ANSWERS_DOC, renderAnswersDoc());
  console.log(`wrote ${ANSWERS_DOC}`);
}
