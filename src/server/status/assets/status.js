// The status page: polls /api/status and renders it. Every value from the guard is inserted as
// text (never as HTML): rule ids, fields and messages come from model responses.

const REFRESH_MS = 2000;

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    // Styles go through the CSSOM: the page's CSP forbids inline style attributes.
    if (name === "style") Object.assign(node.style, value);
    else if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

const integer = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });
const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
const percent = new Intl.NumberFormat("en", { style: "percent", maximumFractionDigits: 1 });

function ago(seconds) {
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m ago`;
  return `${Math.round(seconds / 3600)}h ago`;
}

function duration(seconds) {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${decimal.format(seconds / 3600)}h`;
}

/** A horizontal bar: ratio in [0, 1], tone "good" | "bad". */
function ratioBar(ratio, tone) {
  const width = `${Math.max(0, Math.min(1, ratio)) * 100}%`;
  return el(
    "div",
    { class: "ratio" },
    el("div", { class: `bar ${tone}` }, el("span", { style: { width } })),
    el("span", { class: "ratio-value" }, percent.format(ratio)),
  );
}

function shedChips(route) {
  if (route.sheds.length === 0) return el("span", { class: "muted" }, "none");
  const list = el("div", { class: "chips" });
  for (const shed of route.sheds) {
    list.append(
      el(
        "span",
        { class: "chip shed", "data-reason": shed.reason, "data-priority": shed.priority },
        el("b", {}, shed.reason.replace(/^shed\./, "")),
        ` · ${shed.priority} `,
        el("span", { class: "count" }, integer.format(shed.count)),
      ),
    );
  }
  return list;
}

function costHistogram(cost) {
  if (cost === null) return el("span", { class: "muted" }, "not scored");
  const highest = Math.max(...cost.buckets.map((bucket) => bucket.count), 1);
  const chart = el("div", {
    class: "histogram",
    title: `${integer.format(cost.count)} requests, mean ${decimal.format(cost.sum / cost.count)} units`,
  });
  for (const bucket of cost.buckets) {
    const label = bucket.le === "+Inf" ? "more" : `≤ ${integer.format(Number(bucket.le))}`;
    chart.append(
      el(
        "div",
        { class: "column", title: `${label}: ${integer.format(bucket.count)}` },
        el("span", {
          class: bucket.count > 0 ? "filled" : "",
          style: { height: `${(bucket.count / highest) * 100}%` },
        }),
      ),
    );
  }
  const bounds = cost.buckets.filter((bucket) => bucket.le !== "+Inf").map((bucket) => Number(bucket.le));
  const axis = el(
    "div",
    { class: "axis muted small" },
    el("span", {}, compact.format(bounds[0] ?? 0)),
    el("span", {}, `${compact.format(bounds.at(-1) ?? 0)}+`),
  );
  const summary = el(
    "div",
    { class: "muted small" },
    `mean ${compact.format(cost.sum / cost.count)} · n=${integer.format(cost.count)}`,
  );
  return el("div", { class: "cost" }, chart, axis, summary);
}

function renderRoutes(routes) {
  const body = document.querySelector("#routes tbody");
  body.replaceChildren(
    ...routes.map((route) =>
      el(
        "tr",
        { "data-route": route.route },
        el("td", { class: "name" }, route.route),
        el("td", { class: "num rate" }, route.ratePerSecond === null ? "—" : decimal.format(route.ratePerSecond)),
        el("td", { class: "num requests" }, integer.format(route.requests)),
        el("td", { class: "num" }, integer.format(route.answeredByGuard)),
        el("td", { class: "sheds" }, shedChips(route)),
        el(
          "td",
          { class: "cache" },
          route.cache === null
            ? el("span", { class: "muted" }, "no cache traffic")
            : ratioBar(route.cache.hitRatio, "good"),
        ),
        el("td", {}, costHistogram(route.cost)),
      ),
    ),
  );
}

function renderRules(rules) {
  if (rules.length === 0) return el("span", { class: "muted" }, "—");
  const list = el("ul", { class: "rules" });
  for (const rule of rules) {
    const example =
      rule.example === null
        ? null
        : el(
            "div",
            { class: "example" },
            el("code", { class: "field" }, rule.example.field),
            " ",
            el("span", { class: "message" }, rule.example.message),
            el("span", { class: "muted small" }, ` · ${ago(rule.example.ageSeconds)}`),
          );
    list.append(
      el(
        "li",
        { "data-rule": rule.rule },
        el("code", { class: "rule" }, rule.rule),
        el("span", { class: "count" }, `×${integer.format(rule.count)}`),
        example,
      ),
    );
  }
  return list;
}

function renderContracts(contracts) {
  const body = document.querySelector("#contracts tbody");
  body.replaceChildren(
    ...contracts.map((row) =>
      el(
        "tr",
        {
          "data-contract": row.contract,
          "data-model-version": row.modelVersion,
          class: row.violated > 0 ? "broken" : "",
        },
        el("td", { class: "name" }, row.contract),
        el("td", {}, el("span", { class: "version" }, row.modelVersion)),
        el("td", { class: "num" }, integer.format(row.checked)),
        el("td", { class: "num violated" }, integer.format(row.violated)),
        el("td", {}, ratioBar(row.violationRatio, "bad")),
        el("td", {}, renderRules(row.topRules)),
      ),
    ),
  );
  document.getElementById("contracts-empty").hidden = contracts.length > 0;
}

const VERDICTS = {
  baseline: "baseline",
  insufficient_data: "insufficient data",
  stable: "stable",
  model_drift: "model drift",
  input_drift: "input drift",
};

/** Fields with the methods past their thresholds and those methods' scores. */
function renderDriftFields(fields) {
  if (fields.length === 0) return el("span", { class: "muted" }, "—");
  const list = el("ul", { class: "rules" });
  for (const field of fields) {
    const scores = field.drifting.map((method) => `${method} ${decimal.format(field.scores[method])}`).join(" · ");
    list.append(
      el(
        "li",
        { "data-field": field.field },
        el("code", { class: "rule" }, field.field),
        el("span", { class: "muted small" }, ` ${scores}`),
      ),
    );
  }
  return list;
}

function renderDrift(routes) {
  const rows = routes.flatMap((route) =>
    route.versions.map((version, index) =>
      el(
        "tr",
        { "data-route": route.route, "data-model-version": version.modelVersion, "data-verdict": version.verdict },
        el(
          "td",
          { class: "name" },
          index === 0 ? route.route : "",
          index === 0 && route.baseline !== null
            ? el("div", { class: "muted small" }, `baseline ${route.baseline}${route.pinned ? " (pinned)" : ""}`)
            : null,
        ),
        el("td", {}, el("span", { class: "version" }, version.modelVersion)),
        el("td", { class: "num" }, integer.format(version.samples)),
        el("td", {}, el("span", { class: `verdict ${version.verdict}` }, VERDICTS[version.verdict] ?? version.verdict)),
        el("td", {}, renderDriftFields(version.topFields)),
        el("td", {}, renderDriftFields(version.inputDrift)),
      ),
    ),
  );
  document.querySelector("#drift tbody").replaceChildren(...rows);
  document.getElementById("drift-empty").hidden = rows.length > 0;
}

function renderPools(pools) {
  const box = document.getElementById("pools");
  if (pools.length === 0) return;
  box.replaceChildren(
    ...pools.map((pool) =>
      el(
        "div",
        { class: "pool", "data-pool": pool.pool, "data-circuit": pool.circuit },
        el("div", { class: "pool-name" }, pool.pool),
        el("div", { class: `circuit ${pool.circuit}` }, `circuit ${pool.circuit.replace("_", "-")}`),
        el(
          "div",
          { class: "muted small" },
          `in flight ${integer.format(pool.inflightCost)} / ${integer.format(pool.limitCost)} cost units · queued ${integer.format(pool.queued)}`,
        ),
      ),
    ),
  );
}

/** What Envoy sent past the guard: always in view when it happened, named by cause. */
function renderUnguarded(unguarded) {
  const banner = document.getElementById("unguarded");
  banner.hidden = unguarded === null || unguarded.requests === 0;
  if (banner.hidden) return;
  const reasons = Object.entries(unguarded.byReason)
    .filter(([, count]) => count > 0)
    .map(([reason, count]) => `${reason.replaceAll("_", " ")} ${integer.format(count)}`)
    .join(" · ");
  banner.textContent = `${integer.format(unguarded.requests)} requests reached a model without the guard (${percent.format(unguarded.share)} of the traffic): ${reasons}`;
}

function render(status) {
  const rateWindow = status.rateWindowSeconds === null ? "" : ` · rates over ${duration(status.rateWindowSeconds)}`;
  const reloads = `reloads ${status.reloads.success} ok, ${status.reloads.failure} failed`;
  document.getElementById("meta").textContent =
    `v${status.version} · up ${duration(status.uptimeSeconds)} · ${reloads}${rateWindow}`;
  renderUnguarded(status.unguarded);
  renderPools(status.pools);
  renderRoutes(status.routes);
  renderContracts(status.contracts);
  renderDrift(status.drift);
}

async function refresh() {
  const state = document.getElementById("state");
  try {
    const response = await fetch("/api/status", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    state.dataset.state = "live";
    state.title = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "true";
  } catch (error) {
    state.dataset.state = "stale";
    state.title = `last refresh failed: ${error.message}`;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

void refresh();
