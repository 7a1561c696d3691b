// promtool over what the project ships: the guard's metrics exposition, the alert rules and their
// unit tests, and the PromQL of every Grafana panel.
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { parse, stringify } from "yaml";
import { guardNamesIn, guardRegistry, guardSeriesNames } from "../helpers/guard-metrics.js";
import { ensureCommand, run } from "../helpers/system.js";

const promtool = ensureCommand("promtool", ["promtool"]);

interface RuleFile {
  groups: { name: string; rules: { alert: string; expr: string }[] }[];
}

t.test("the metrics exposition passes promtool check metrics", async (t) => {
  const registry = await guardRegistry();
  const result = run(promtool, ["check", "metrics"], await registry.metrics());
  t.equal(result.status, 0, result.output);
  t.equal(result.output.trim(), "", "no lint findings");
});

t.test("alert rules are valid and their unit tests pass", async (t) => {
  const check = run(promtool, ["check", "rules", "ops/prometheus/alerts.yaml"]);
  t.equal(check.status, 0, check.output);
  t.match(check.output, /SUCCESS: 12 rules found/);
  const tests = run(promtool, ["test", "rules", "ops/prometheus/alerts.test.yaml"]);
  t.equal(tests.status, 0, tests.output);
  t.match(tests.output, /SUCCESS/);
});

t.test("every alert names metrics the guard exports, and every alert has a unit test", async (t) => {
  const rules = parse(await readFile("ops/prometheus/alerts.yaml", "utf8")) as RuleFile;
  const tested = await readFile("ops/prometheus/alerts.test.yaml", "utf8");
  const names = await guardSeriesNames();
  const alerts = rules.groups.flatMap((group) => group.rules);
  t.same(alerts.map((rule) => rule.alert).sort(), [
    "GuardAbsent",
    "GuardBypassed",
    "GuardCacheHitRatioCollapsed",
    "GuardCanaryQuarantined",
    "GuardCannotReadEnvoy",
    "GuardCircuitOpen",
    "GuardConfigReloadFailed",
    "GuardContractViolationRatioHigh",
    "GuardDown",
    "GuardModeOverrideIgnored",
    "GuardShadowFieldDiffers",
    "GuardShedRatioHigh",
  ]);
  for (const rule of alerts) {
    for (const name of guardNamesIn(rule.expr)) t.ok(names.has(name), `${rule.alert}: ${name} is a guard metric`);
    t.match(tested, new RegExp(`alertname: ${rule.alert}\\b`), `${rule.alert} is unit-tested`);
  }
});

t.test("every Grafana panel query is valid PromQL", async (t) => {
  const dashboard = JSON.parse(await readFile("ops/grafana/inference-guard.json", "utf8")) as {
    panels: { title: string; targets?: { expr: string }[] }[];
  };
  // Grafana's variables replaced by values of the same kind, then parsed by promtool as recording rules.
  const concrete = (expr: string): string =>
    expr.replaceAll("$__rate_interval", "5m").replaceAll("$__range", "1h").replaceAll("$route", ".*");
  const rules = dashboard.panels
    .flatMap((panel) => panel.targets ?? [])
    .map((target, index) => ({ record: `dashboard:query_${index}`, expr: concrete(target.expr) }));
  t.ok(rules.length > 20, `${rules.length} panel queries`);
  const dir = await mkdtemp(join(tmpdir(), "guard-dashboard-"));
  const file = join(dir, "queries.yaml");
  await writeFile(file, stringify({ groups: [{ name: "dashboard", rules }] }));
  const check = run(promtool, ["check", "rules", file]);
  t.equal(check.status, 0, check.output);
});
