import t from "tap";
import { parseConfig } from "../../../../src/config/load.js";
import { configSchema } from "../../../../src/config/schema.js";
import { admissionSchema } from "../../../../src/pipeline/admission/config.js";

t.test("an empty config gets working defaults", async (t) => {
  const config = configSchema.parse({ routes: [{ name: "chat", match: {} }] });
  t.equal(config.admission.limit.targetRatio, 1.8);
  t.same(
    [
      config.admission.classes.critical.share,
      config.admission.classes.standard.share,
      config.admission.classes.sheddable.share,
    ],
    [1, 0.8, 0.6],
  );
  t.equal(config.admission.requestWeight, 4);
  t.same(config.routes[0]?.admission, { enabled: false, splitTiers: true }, "the pool defaults to the route itself");
  t.same(
    parseConfig("routes: [{ name: chat, admission: { enabled: true } }]").warnings,
    [],
    "default waits fit Envoy's default message timeout",
  );
});

t.test("a lower class may not get a larger share than a higher one", async (t) => {
  const parsed = admissionSchema.safeParse({ classes: { sheddable: { share: 0.95 } } });
  t.equal(parsed.success, false);
  t.match(parsed.error?.issues, [{ path: ["classes", "sheddable", "share"] }]);
});

t.test("limit bounds must be ordered", async (t) => {
  const parsed = admissionSchema.safeParse({ limit: { min: 50, initial: 20 } });
  t.equal(parsed.success, false);
  t.match(parsed.error?.issues, [{ path: ["limit", "initial"] }]);
  const inverted = admissionSchema.safeParse({ limit: { min: 500, initial: 500, max: 100 } });
  t.same(
    inverted.error?.issues.map(({ path, message }) => ({ path, message })),
    [
      { path: ["limit", "min"], message: "limit.min exceeds limit.max" },
      { path: ["limit", "initial"], message: "limit.initial must lie within [limit.min, limit.max]" },
    ],
    "min above max, and initial above max with it",
  );
});

t.test("standard may not get a larger share than critical", async (t) => {
  const parsed = admissionSchema.safeParse({ classes: { critical: { share: 0.5 }, standard: { share: 0.7 } } });
  t.same(
    parsed.error?.issues.map(({ path, message }) => ({ path, message })),
    [{ path: ["classes", "standard", "share"], message: "must not exceed classes.critical.share" }],
    "sheddable's default 0.6 stays below the raised standard share",
  );
});

t.test("unknown keys are errors", async (t) => {
  t.equal(admissionSchema.safeParse({ limt: {} }).success, false);
});

t.test("warns when Envoy's message timeout is shorter than the longest class wait", async (t) => {
  const warnings = parseConfig(
    "envoy: { messageTimeoutMs: 500 }\nroutes: [{ name: chat, admission: { enabled: true } }]\n",
  ).warnings;
  t.equal(warnings.length, 1);
  t.equal(warnings[0]?.path, "envoy.messageTimeoutMs");
  t.match(warnings[0]?.message, /900 ms/);
  t.same(
    parseConfig("envoy: { messageTimeoutMs: 500 }\nroutes: [{ name: chat, admission: { enabled: false } }]\n").warnings,
    [],
    "no admitting route, no warning",
  );
});
