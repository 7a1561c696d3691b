// The Grafana dashboard: parses, every panel queries something, and every query names metrics the
// guard actually exports (a renamed metric must break this test, not the dashboard in production).
import { readFile } from "node:fs/promises";
import t from "tap";
import { guardNamesIn, guardSeriesNames } from "../../helpers/guard-metrics.js";

interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly gridPos: { readonly x: number; readonly y: number; readonly w: number; readonly h: number };
  readonly targets?: readonly { readonly expr: string; readonly refId: string }[];
}

interface Dashboard {
  readonly uid: string;
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: readonly { readonly name: string; readonly query?: unknown }[] };
}

t.test("every panel query references existing guard metrics", async (t) => {
  const dashboard = JSON.parse(await readFile("ops/grafana/inference-guard.json", "utf8")) as Dashboard;
  const names = await guardSeriesNames();
  t.equal(dashboard.uid, "inference-guard");
  const panels = dashboard.panels.filter((panel) => panel.type !== "row");
  t.ok(panels.length >= 20, `${panels.length} panels`);
  t.equal(new Set(dashboard.panels.map((panel) => panel.id)).size, dashboard.panels.length, "panel ids are unique");
  for (const panel of panels) {
    const targets = panel.targets ?? [];
    t.ok(targets.length > 0, `${panel.title}: has a query`);
    t.ok(panel.gridPos.x + panel.gridPos.w <= 24, `${panel.title}: fits the 24-column grid`);
    for (const target of targets) {
      const used = guardNamesIn(target.expr);
      t.ok(used.length > 0, `${panel.title} ${target.refId}: queries a guard_* metric`);
      for (const name of used) t.ok(names.has(name), `${panel.title} ${target.refId}: ${name} exists`);
    }
  }
  const route = dashboard.templating.list.find((variable) => variable.name === "route");
  for (const name of guardNamesIn(JSON.stringify(route?.query)))
    t.ok(names.has(name), `route variable: ${name} exists`);
});

t.test("the views of the status page are all on the dashboard", async (t) => {
  const text = await readFile("ops/grafana/inference-guard.json", "utf8");
  for (const metric of [
    "guard_requests_total",
    "guard_shed_total",
    "guard_contract_checks_total",
    "guard_contract_violations_total",
    "guard_cache_hits_total",
    "guard_request_cost_bucket",
    "guard_circuit_state",
  ]) {
    t.ok(text.includes(metric), metric);
  }
});

t.test("docs/operations.md lists every panel", async (t) => {
  const dashboard = JSON.parse(await readFile("ops/grafana/inference-guard.json", "utf8")) as Dashboard;
  const docs = await readFile("docs/operations.md", "utf8");
  for (const panel of dashboard.panels) {
    if (panel.type === "row") t.ok(docs.includes(`**${panel.title}**`), `section ${panel.title}`);
    else t.ok(docs.includes(`| ${panel.title} | ${panel.type} |`), `panel ${panel.title}`);
  }
});
