// The status page's live part as HTML, rendered here only: the page's first paint (GET /) carries
// it, and the browser's script polls the same markup (GET /status/live) and swaps it in. One
// renderer, so the page without JavaScript and the page after an update cannot differ. Every value
// is escaped: rule ids, fields and messages come from model responses.
import type { CanaryRouteStatus, CandidateStatus } from "../../pipeline/canary/stage.js";
import type {
  ContractStatus,
  CostHistogram,
  DriftFieldStatus,
  DriftStatus,
  PoolStatus,
  RouteStatus,
  RuleStatus,
  StatusReport,
  UnguardedStatus,
} from "./report.js";

/** Markup that is already safe: what `html` returns, and inserts as is. */
class Markup {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

type Child = Markup | string | number | null | undefined | readonly Child[];

const ESCAPES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => ESCAPES[character] ?? character);
}

function flatten(child: Child): string {
  if (child === null || child === undefined) return "";
  if (child instanceof Markup) return child.text;
  if (Array.isArray(child)) return child.map(flatten).join("");
  return escapeHtml(String(child));
}

/** A template whose interpolations are escaped (text and attribute values alike) unless already markup. */
function html(strings: TemplateStringsArray, ...values: readonly Child[]): Markup {
  return new Markup(strings.reduce((out, part, index) => out + flatten(values[index - 1]) + part, "").trim());
}

/** An attribute only when it has a value. */
function attribute(name: string, value: string | undefined): Markup {
  return new Markup(value === undefined ? "" : ` ${name}="${escapeHtml(value)}"`);
}

const integer = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });
const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
const percent = new Intl.NumberFormat("en", { style: "percent", maximumFractionDigits: 1 });

function ago(seconds: number): string {
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m ago`;
  return `${Math.round(seconds / 3600)}h ago`;
}

function duration(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${decimal.format(seconds / 3600)}h`;
}

const muted = (text: string): Markup => html`<span class="muted">${text}</span>`;

// Bars and columns are SVG shapes sized by their own attributes: the page's CSP forbids inline
// style attributes, and these need no script to be drawn.

function ratioBar(ratio: number, tone: "good" | "bad"): Markup {
  const width = Math.max(0, Math.min(1, ratio)) * 100;
  return html`<div class="ratio"><svg class="bar ${tone}" viewBox="0 0 100 1" preserveAspectRatio="none"><rect width="${width}" height="1"/></svg><span class="ratio-value">${percent.format(ratio)}</span></div>`;
}

function shedChips(route: RouteStatus): Markup {
  if (route.sheds.length === 0) return muted("none");
  return html`<div class="chips">${route.sheds.map(
    (shed) =>
      html`<span class="chip shed" data-reason="${shed.reason}" data-priority="${shed.priority}"><b>${shed.reason.replace(/^shed\./, "")}</b> · ${shed.priority} <span class="count">${integer.format(shed.count)}</span></span>`,
  )}</div>`;
}

/** Column heights in a 100-unit-tall chart; an empty bucket keeps a sliver so the axis reads. */
const CHART_HEIGHT = 100;
const EMPTY_COLUMN = 3;

function costHistogram(cost: CostHistogram | null): Markup {
  if (cost === null) return muted("not scored");
  const highest = Math.max(...cost.buckets.map((bucket) => bucket.count), 1);
  const columns = cost.buckets.map((bucket, index) => {
    const label = bucket.le === "+Inf" ? "more" : `≤ ${integer.format(Number(bucket.le))}`;
    const height = Math.max(EMPTY_COLUMN, (bucket.count / highest) * CHART_HEIGHT);
    return html`<rect${attribute("class", bucket.count > 0 ? "filled" : undefined)} x="${index + 0.1}" y="${CHART_HEIGHT - height}" width="0.8" height="${height}"><title>${label}: ${integer.format(bucket.count)}</title></rect>`;
  });
  const bounds = cost.buckets.filter((bucket) => bucket.le !== "+Inf").map((bucket) => Number(bucket.le));
  return html`<div class="cost"><svg class="histogram" viewBox="0 0 ${cost.buckets.length} ${CHART_HEIGHT}" preserveAspectRatio="none"><title>${integer.format(cost.count)} requests, mean ${decimal.format(cost.sum / cost.count)} units</title>${columns}</svg><div class="axis muted small"><span>${compact.format(bounds[0] ?? 0)}</span><span>${compact.format(bounds.at(-1) ?? 0)}+</span></div><div class="muted small">mean ${compact.format(cost.sum / cost.count)} · n=${integer.format(cost.count)}</div></div>`;
}

function routeRow(route: RouteStatus): Markup {
  return html`<tr data-route="${route.route}"><td class="name">${route.route}</td><td class="num rate">${route.ratePerSecond === null ? "—" : decimal.format(route.ratePerSecond)}</td><td class="num requests">${integer.format(route.requests)}</td><td class="num">${integer.format(route.answeredByGuard)}</td><td class="sheds">${shedChips(route)}</td><td class="cache">${route.cache === null ? muted("no cache traffic") : ratioBar(route.cache.hitRatio, "good")}</td><td>${costHistogram(route.cost)}</td></tr>`;
}

function rules(list: readonly RuleStatus[]): Markup {
  if (list.length === 0) return muted("—");
  return html`<ul class="rules">${list.map((rule) => {
    const example =
      rule.example === null
        ? null
        : html`<div class="example"><code class="field">${rule.example.field}</code> <span class="message">${rule.example.message}</span><span class="muted small"> · ${ago(rule.example.ageSeconds)}</span></div>`;
    return html`<li data-rule="${rule.rule}"><code class="rule">${rule.rule}</code><span class="count">×${integer.format(rule.count)}</span>${example}</li>`;
  })}</ul>`;
}

function contractRow(row: ContractStatus): Markup {
  return html`<tr data-contract="${row.contract}" data-model-version="${row.modelVersion}"${attribute("class", row.violated > 0 ? "broken" : undefined)}><td class="name">${row.contract}</td><td><span class="version">${row.modelVersion}</span></td><td class="num">${integer.format(row.checked)}</td><td class="num violated">${integer.format(row.violated)}</td><td>${ratioBar(row.violationRatio, "bad")}</td><td>${rules(row.topRules)}</td></tr>`;
}

const VERDICTS: Readonly<Record<string, string>> = {
  baseline: "baseline",
  insufficient_data: "insufficient data",
  stable: "stable",
  model_drift: "model drift",
  input_drift: "input drift",
};

/** Fields with the methods past their thresholds and those methods' scores. */
function driftFields(fields: readonly DriftFieldStatus[]): Markup {
  if (fields.length === 0) return muted("—");
  return html`<ul class="rules">${fields.map((field) => {
    const scores = field.drifting.map((method) => `${method} ${decimal.format(field.scores[method] ?? 0)}`).join(" · ");
    return html`<li data-field="${field.field}"><code class="rule">${field.field}</code><span class="muted small"> ${scores}</span></li>`;
  })}</ul>`;
}

function driftRows(route: DriftStatus): Markup[] {
  return route.versions.map((version, index) => {
    const baseline =
      index === 0 && route.baseline !== null
        ? html`<div class="muted small">baseline ${route.baseline}${route.pinned ? " (pinned)" : ""}</div>`
        : null;
    return html`<tr data-route="${route.route}" data-model-version="${version.modelVersion}" data-verdict="${version.verdict}"><td class="name">${index === 0 ? route.route : ""}${baseline}</td><td><span class="version">${version.modelVersion}</span></td><td class="num">${integer.format(version.samples)}</td><td><span class="verdict ${version.verdict}">${VERDICTS[version.verdict] ?? version.verdict}</span></td><td>${driftFields(version.topFields)}</td><td>${driftFields(version.inputDrift)}</td></tr>`;
  });
}

function pools(list: readonly PoolStatus[]): Markup {
  if (list.length === 0) return html`<p class="empty">No route has admission control enabled.</p>`;
  return html`${list.map(
    (pool) =>
      html`<div class="pool" data-pool="${pool.pool}" data-circuit="${pool.circuit}"><div class="pool-name">${pool.pool}</div><div class="circuit ${pool.circuit}">circuit ${pool.circuit.replace("_", "-")}</div><div class="muted small">in flight ${integer.format(pool.inflightCost)} / ${integer.format(pool.limitCost)} cost units · queued ${integer.format(pool.queued)}</div></div>`,
  )}`;
}

/** What Envoy sent past the guard: always in view when it happened, named by cause. */
function unguardedBanner(unguarded: UnguardedStatus | null): Markup | null {
  if (unguarded === null || unguarded.requests === 0) return null;
  const reasons = Object.entries(unguarded.byReason)
    .filter(([, count]) => count > 0)
    .map(([reason, count]) => `${reason.replaceAll("_", " ")} ${integer.format(count)}`)
    .join(" · ");
  return html`<p id="unguarded" class="unguarded" role="alert">${integer.format(unguarded.requests)} requests reached a model without the guard (${percent.format(unguarded.share)} of the traffic): ${reasons}</p>`;
}

/** A quarantined candidate is a rollout stopped by the guard: in view until an operator releases it. */
function quarantineBanner(rollouts: readonly CanaryRouteStatus[]): Markup | null {
  const quarantined = rollouts.flatMap((rollout) =>
    rollout.candidates.flatMap((candidate) =>
      candidate.quarantine === null ? [] : [`${candidate.pool} of ${rollout.route} (${candidate.quarantine.reason})`],
    ),
  );
  if (quarantined.length === 0) return null;
  return html`<p id="quarantined" class="quarantine-banner" role="alert">Quarantined, out of traffic but for probes: ${quarantined.join(" · ")}. An operator releases one with POST /admin/canary/release once it is fixed.</p>`;
}

function candidateState(candidate: CandidateStatus): Markup {
  const { quarantine } = candidate;
  if (quarantine === null) return html`<span class="verdict serving">serving</span>`;
  const { evidence } = quarantine;
  const rule = `${quarantine.reason} ${percent.format(quarantine.rate)}, lower bound ${percent.format(quarantine.lowerBound)} > max ${percent.format(quarantine.max)}`;
  const counts = `evidence ${integer.format(evidence.answers)} answers, ${integer.format(evidence.violations)} violations, ${integer.format(evidence.errors)} errors`;
  const origin = quarantine.source === "fleet" ? " · decided by another sidecar" : "";
  return html`<span class="verdict quarantined">quarantined</span><div class="muted small">${rule} · ${counts} · ${duration(quarantine.ageSeconds)} ago${origin} · ${integer.format(quarantine.healthyProbes)} healthy probes</div>`;
}

function rolloutRows(rollout: CanaryRouteStatus): Markup[] {
  return rollout.candidates.map((candidate, index) => {
    const state = candidate.quarantine === null ? "serving" : "quarantined";
    const route = index === 0 ? html`${rollout.route}<div class="muted small">stable ${rollout.stable}</div>` : null;
    return html`<tr data-route="${rollout.route}" data-pool="${candidate.pool}" data-state="${state}"><td class="name">${route}</td><td><span class="version">${candidate.pool}</span></td><td class="num">${percent.format(candidate.weight)}</td><td class="num">${percent.format(candidate.share)}</td><td class="num">${integer.format(candidate.window.answers)}</td><td class="num">${integer.format(candidate.window.violations)}</td><td class="num">${integer.format(candidate.window.errors)}</td><td>${candidateState(candidate)}</td></tr>`;
  });
}

/** Per compared field: candidate and noise agreement, numeric differences, and the verdict. */
function shadowRows(rollout: CanaryRouteStatus): Markup[] {
  const shadow = rollout.shadow;
  if (shadow === null) return [];
  return shadow.fields.map((field, index) => {
    const name =
      index === 0
        ? html`${rollout.route}<div class="muted small">${shadow.pool} against ${rollout.stable} · sampling ${percent.format(shadow.sampleRate)} · ${integer.format(shadow.inFlight)} of ${integer.format(shadow.maxConcurrent)} in flight</div>`
        : null;
    const difference = (side: typeof field.candidate): Markup =>
      side.differences === undefined
        ? muted("—")
        : html`mean ${decimal.format(side.differences.mean)}<div class="muted small">|Δ| p50 ${decimal.format(side.differences.p50)} · p90 ${decimal.format(side.differences.p90)} · p99 ${decimal.format(side.differences.p99)}</div>`;
    const { verdict } = field;
    const state = verdict.differs ? "differs" : "within_noise";
    const rule = `differing ${percent.format(verdict.candidateRate)} (lower bound ${percent.format(verdict.candidateLower)}) vs noise ${percent.format(verdict.noiseRate)} (upper bound ${percent.format(verdict.noiseUpper)})`;
    return html`<tr data-route="${rollout.route}" data-field="${field.field}" data-state="${state}"><td class="name">${name}</td><td><code class="rule">${field.field}</code></td><td class="num">${integer.format(field.candidate.comparisons)}</td><td class="num">${percent.format(field.candidate.agreementRate)}</td><td class="num">${percent.format(field.noise.agreementRate)}</td><td>${difference(field.candidate)}</td><td>${difference(field.noise)}</td><td><span class="verdict ${verdict.differs ? "model_drift" : "stable"}">${verdict.differs ? "differs" : "within noise"}</span><div class="muted small">${rule}</div></td></tr>`;
  });
}

/** Shown until the page's script has swapped in an update of its own. */
const RENDERED_STATE = "rendered";

/** The page between its head and its footer: header, bypass banner and every table. */
export function renderStatus(status: StatusReport): string {
  const rateWindow = status.rateWindowSeconds === null ? "" : ` · rates over ${duration(status.rateWindowSeconds)}`;
  const reloads = `reloads ${status.reloads.success} ok, ${status.reloads.failure} failed`;
  const drift = status.drift.flatMap(driftRows);
  const rollouts = status.rollouts.flatMap(rolloutRows);
  const shadows = status.rollouts.flatMap(shadowRows);
  return html`
<header>
  <h1>inference-guard</h1>
  <div id="meta" class="meta">v${status.version} · up ${duration(status.uptimeSeconds)} · ${reloads}${rateWindow}</div>
  <div id="state" class="state" data-state="${RENDERED_STATE}" title="as the guard rendered the page">●</div>
</header>
${unguardedBanner(status.unguarded)}
${quarantineBanner(status.rollouts)}
<main>
  <section>
    <h2>Upstream pools</h2>
    <div id="pools" class="pools">${pools(status.pools)}</div>
  </section>
  <section>
    <h2>Routes</h2>
    <table id="routes">
      <thead>
        <tr>
          <th>route</th><th class="num">req/s</th><th class="num">requests</th><th class="num">answered by guard</th>
          <th>sheds by reason · class</th><th>cache hit ratio</th><th>request cost (units)</th>
        </tr>
      </thead>
      <tbody>${status.routes.map(routeRow)}</tbody>
    </table>
  </section>
  <section>
    <h2>Which model version broke what</h2>
    <table id="contracts">
      <thead>
        <tr>
          <th>contract</th><th>model version</th><th class="num">checked</th><th class="num">violated</th>
          <th>violation ratio</th><th>top rules · latest example</th>
        </tr>
      </thead>
      <tbody>${status.contracts.map(contractRow)}</tbody>
    </table>
    ${status.contracts.length === 0 ? html`<p id="contracts-empty" class="empty">No contract verdicts yet.</p>` : null}
  </section>
  <section>
    <h2>Which model version drifts in range</h2>
    <table id="drift">
      <thead>
        <tr>
          <th>route · baseline</th><th>model version</th><th class="num">answers</th><th>verdict</th>
          <th>top drifting fields</th><th>input drift</th>
        </tr>
      </thead>
      <tbody>${drift}</tbody>
    </table>
    ${drift.length === 0 ? html`<p id="drift-empty" class="empty">No contract-bound answers profiled yet.</p>` : null}
  </section>
  <section>
    <h2>Model rollouts</h2>
    <table id="rollouts">
      <thead>
        <tr>
          <th>route · stable pool</th><th>candidate</th><th class="num">weight</th><th class="num">share now</th>
          <th class="num">answers</th><th class="num">violations</th><th class="num">errors</th><th>state · evidence</th>
        </tr>
      </thead>
      <tbody>${rollouts}</tbody>
    </table>
    ${rollouts.length === 0 ? html`<p id="rollouts-empty" class="empty">No route is in rollout.</p>` : null}
    ${
      shadows.length === 0
        ? null
        : html`<h3>Shadow comparison: candidate against stable, beyond stable-against-stable noise</h3>
    <table id="shadow">
      <thead>
        <tr>
          <th>route · candidate</th><th>field</th><th class="num">compared</th><th class="num">agree</th>
          <th class="num">noise agree</th><th>difference</th><th>noise difference</th><th>verdict</th>
        </tr>
      </thead>
      <tbody>${shadows}</tbody>
    </table>`
    }
  </section>
</main>`.text;
}
